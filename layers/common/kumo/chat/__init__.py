"""Chat: channels of an organization, their messages, and their live stream (ADR 29)."""
