"""Media's own problem types: stable slugs a client can act on without reading the detail."""

from __future__ import annotations

from kumo.core.errors import Conflict


class StorageQuotaReached(Conflict):
    slug, title = "storage-quota-reached", "Storage quota reached"


class TooManyPendingUploads(Conflict):
    slug, title = "too-many-pending-uploads", "Too many uploads in progress"
