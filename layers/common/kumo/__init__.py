"""Kumo's shared layer: core helpers and one package per bounded context."""
