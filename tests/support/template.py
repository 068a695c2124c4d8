"""The template reader the tests share with the launcher."""

from infra.template import ROOT, resources, table_definitions, template

__all__ = ["ROOT", "resources", "table_definitions", "template"]
