"""Run MiniStack with one fix, so a nested stack can be updated as on AWS (ADR 19).

    .local/ministack/bin/python infra/local/engine.py     (infra.local.stack starts it so)

MiniStack 1.5.33 updates a nested stack's resources without their previous attributes (its
top-level update passes them), so a resource that did not change comes back with none, and the
next `Fn::GetAtt` on it fails the update: "Requested attribute Arn does not exist in schema for
AWS::IAM::Role". Every context stack refers to its functions' roles so, so without this no
change to a context could be deployed twice. The fix looks the attributes up where the engine
keeps them; tests/integration/test_engine_contract.py proves the update on the running engine.
This runs in MiniStack's own venv, so it imports nothing from Kumo.
"""

from __future__ import annotations

import sys
from typing import Any

from ministack.app import main
from ministack.services import cloudformation
from ministack.services.cloudformation import provisioners

_update_resource = provisioners._update_resource


def _update_keeping_attributes(
    resource_type: str,
    physical_id: str,
    old_props: dict[str, Any],
    new_props: dict[str, Any],
    stack_name: str,
    logical_id: str | None = None,
    old_attrs: dict[str, Any] | None = None,
) -> Any:
    if old_attrs is None and logical_id is not None:
        # During the update the stack's record still holds the resource as it was.
        record = cloudformation._stacks.get(stack_name, {}).get("_resources", {})
        old_attrs = record.get(logical_id, {}).get("Attributes")
    return _update_resource(
        resource_type, physical_id, old_props, new_props, stack_name, logical_id, old_attrs
    )


provisioners._update_resource = _update_keeping_attributes

if __name__ == "__main__":
    sys.exit(main())
