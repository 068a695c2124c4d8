"""Run MiniStack with what Kumo needs of it and it does not do itself (ADR 19, ADR 25).

    .local/ministack/bin/python infra/local/engine.py     (infra.local.stack starts it so)

This runs in MiniStack's own venv, so it imports nothing from Kumo. MiniStack's files are not
changed: this module starts its server with three additions, each pinned by a contract test.

1. Nested stack updates keep their attributes (tests/integration/test_engine_contract.py).
   MiniStack 1.5.33 updates a nested stack's resources without their previous attributes (its
   top-level update passes them), so a resource that did not change comes back with none, and
   the next `Fn::GetAtt` on it fails the update: "Requested attribute Arn does not exist in
   schema for AWS::IAM::Role". Every context stack refers to its functions' roles so, so
   without this no change to a context could be deployed twice. The fix looks the attributes
   up where the engine keeps them.

2. Saves while it runs (tests/integration/test_local_stack_lifecycle.py). The engine writes
   its state (PERSIST_STATE) only when it stops cleanly, so a crash lost every write since it
   started. Its own save (`save_all`, what its shutdown runs) now also runs
   - every KUMO_SAVE_SECONDS (default 2) after a request came in, for every service but the
     ones only a deploy changes (DEPLOY_TIME: megabytes of function code and templates),
     and never more often than ten times its own duration, so it costs at most a tenth of a
     core as the data grows;
   - for every service on `POST /_kumo/save`, which the launcher calls after a deploy; it
     answers when the files are written (at once with `?wait=0`, after a code push).
   The state is copied on the event loop, where the engine handles requests (so none changes
   it meanwhile), and written from a thread; one lock orders these writes and the shutdown's.

3. The SES outbox is saved with the rest (MiniStack keeps sent mail in memory only, so it was
   empty after every restart): it is part of the `ses` state it writes and reads.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ministack import app as engine
from ministack.app import main
from ministack.core import persistence
from ministack.services import cloudformation, ses
from ministack.services.cloudformation import provisioners

# --- 1. nested stack updates ---------------------------------------------------------------

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

# --- 2. saves while it runs ----------------------------------------------------------------

# What only a deploy (or a code push) changes; the launcher saves these after it.
DEPLOY_TIME = frozenset(
    {"lambda", "cloudformation", "apigateway", "apigateway_v1", "iam", "cloudwatch_logs"}
)
SAVE_PATH = "/_kumo/save"
# Requests that change nothing: the launcher's readiness probe.
_QUIET_PATHS = ("/_ministack/ready", "/_ministack/health", SAVE_PATH)
_save_lock = threading.Lock()
_changed = threading.Event()
_engine_save_all = engine.save_all

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _save_all_locked(services: dict[str, Any]) -> None:
    with _save_lock:
        _engine_save_all(services)


# The shutdown save goes through the same lock as ours (they replace the same files).
engine.save_all = _save_all_locked


def _snapshot(*, everything: bool) -> dict[str, Any]:
    """Each service's state, as `save_all` takes it. Run on the event loop, where the engine
    handles requests, so that no request changes a service while it is copied."""
    services = engine._build_persistence_save_dict()
    states = {}
    for name, get_state in services.items():
        if not everything and name in DEPLOY_TIME:
            continue
        try:
            state = get_state()
        except Exception as error:  # changed meanwhile by a thread of the engine's: next time
            print(f"[kumo-engine] not saved: {name}: {error!r}", file=sys.stderr, flush=True)
            continue
        if state is not None:  # as save_all: no state is not an empty state
            states[name] = state
    return states


def _write(states: dict[str, Any]) -> None:
    with _save_lock:
        for name, state in states.items():
            persistence.save_state(name, state)


async def save(*, everything: bool) -> dict[str, Any]:
    started = time.monotonic()
    states = _snapshot(everything=everything)
    await asyncio.to_thread(_write, states)  # serializing and writing: off the loop
    return {"saved": sorted(states), "seconds": round(time.monotonic() - started, 3)}


def _save_periodically(interval: float) -> None:
    while True:
        _changed.wait()
        time.sleep(interval)
        _changed.clear()  # what changes from here on is saved next time
        took = interval
        if _loop is not None:
            try:
                done = asyncio.run_coroutine_threadsafe(save(everything=False), _loop)
                took = done.result()["seconds"]
            except Exception as error:  # the next round tries again; the files stay whole
                print(f"[kumo-engine] periodic save failed: {error!r}", file=sys.stderr)
        time.sleep(max(0.0, 9 * took))


_loop: asyncio.AbstractEventLoop | None = None
_pending: set[asyncio.Task[dict[str, Any]]] = set()  # saves asked for without waiting


_serve = engine.app


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _loop
    if _loop is None:
        _loop = asyncio.get_running_loop()
    path = scope.get("path", "")
    if scope["type"] == "http" and path == SAVE_PATH and scope.get("method") == "POST":
        if b"wait=0" in scope.get("query_string", b""):
            _pending.add(task := asyncio.create_task(save(everything=True)))
            task.add_done_callback(_pending.discard)
            result: dict[str, Any] = {"saving": True}
        else:
            result = await save(everything=True)
        body = json.dumps(result).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] in ("http", "websocket") and not path.startswith(_QUIET_PATHS):
        _changed.set()
    await _serve(scope, receive, send)


# --- 3. the SES outbox ---------------------------------------------------------------------

OUTBOX_KEY = "_kumo_sent_emails"
_ses_get_state = ses.get_state
_ses_load = ses.load_persisted_state


def _ses_state() -> dict[str, Any]:
    state: dict[str, Any] = _ses_get_state()
    state[OUTBOX_KEY] = copy.deepcopy(ses._sent_emails)
    return state


def _ses_restore(data: dict[str, Any]) -> Any:
    result = _ses_load(data)
    if OUTBOX_KEY in data:
        ses._restore_regional_store(ses._sent_emails, data[OUTBOX_KEY])
    return result


ses.get_state = _ses_state
ses.load_persisted_state = _ses_restore

if __name__ == "__main__":
    if persistence.PERSIST_STATE:
        seconds = float(os.environ.get("KUMO_SAVE_SECONDS", "2"))
        threading.Thread(
            target=_save_periodically, args=(seconds,), daemon=True, name="kumo-save"
        ).start()
    engine.app = app  # main() serves the module's `app`
    sys.exit(main())
