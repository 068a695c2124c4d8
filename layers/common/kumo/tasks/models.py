"""Tasks table items.

Access patterns:
  task by id     TASK#<id> / TASK
"""

from __future__ import annotations

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from kumo.core.config import get_settings


def task_key(task_id: str) -> str:
    return f"TASK#{task_id}"


class EmailTaskModel(Model):
    class Meta:
        table_name = get_settings().tasks_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="TASK")
    task_id = UnicodeAttribute()
    kind = UnicodeAttribute(default="email")
    template = UnicodeAttribute()
    recipient = UnicodeAttribute()
    # Holds one-time links until the mail is sent, then is cleared.
    params = MapAttribute[str, str](default=dict)
    status = UnicodeAttribute(default="queued")
    attempts = NumberAttribute(default=0)
    created_at = UnicodeAttribute()
    sent_at = UnicodeAttribute(null=True)
    message_id = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()
