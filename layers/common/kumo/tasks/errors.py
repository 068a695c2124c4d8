"""Tasks' own problem types: stable slugs a client can act on without reading the detail."""

from __future__ import annotations

from kumo.core.errors import Conflict


class DuplicateTask(Conflict):
    slug, title = "duplicate-task", "A task for this URL exists"


class TaskLimitReached(Conflict):
    slug, title = "task-limit-reached", "Scheduled task limit reached"
