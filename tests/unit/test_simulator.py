"""The device simulator's pure parts: values, timing, batching, commands, arguments; no network."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from kumo.devices.schemas import CommandResultRequest
from kumo.telemetry.contract import parse_payload

from infra.local import simulator
from infra.local.simulator import (
    MAX_BATCH,
    RANGES,
    REBOOT_SECONDS,
    DeviceKey,
    Fleet,
    Sensor,
    SimulatedDevice,
)

NOW_MS = 1_714_564_800_000
ORG = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
DEVICE = "01HYYYYYYYYYYYYYYYYYYYYYYY"


def _device(interval: float = 1.0, seed: int = 7) -> SimulatedDevice:
    return SimulatedDevice(
        device_id=DEVICE, org_id=ORG, sensor=Sensor.new(random.Random(seed)), interval=interval
    )


def _command(**fields: Any) -> bytes:
    return json.dumps({"id": "c-1", "name": "ping", "params": {}, **fields}).encode()


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_sensor_values_stay_in_range_over_a_long_run(seed: int) -> None:
    # Given a sensor
    rng = random.Random(seed)
    sensor = Sensor.new(rng)
    # When it reads 20 000 times
    readings = [sensor.step(rng) for _ in range(20_000)]
    # Then every value is within its metric's range
    for metric, (low, high) in RANGES.items():
        values = [reading[metric] for reading in readings]
        assert low <= min(values) and max(values) <= high, metric


def test_sensor_values_drift_rather_than_jump() -> None:
    rng = random.Random(3)
    sensor = Sensor.new(rng)
    temperatures = [sensor.step(rng)["temperature"] for _ in range(1_000)]
    steps = [abs(b - a) for a, b in itertools.pairwise(temperatures)]
    assert max(steps) < 1.5
    assert len(set(temperatures)) > 100  # and they do move


def test_sensor_battery_is_swapped_when_nearly_empty() -> None:
    rng = random.Random(1)
    sensor = Sensor.new(rng)
    sensor.battery = 5.001
    values = [sensor.step(rng)["battery"] for _ in range(10)]
    assert max(values) == 100.0 and min(values) >= 5.0


def test_readings_follow_the_payload_contract_single_and_batched() -> None:
    # Given a device with ten readings due
    device = _device(interval=0.1)
    device.queue_readings(device.readings_due(0.95, NOW_MS, random.Random(2)))
    # When they go out as single messages and as one batch
    singles = device.take_messages(1)
    device.queue_readings(device.readings_due(2.0, NOW_MS + 1000, random.Random(2)))
    batches = device.take_messages(MAX_BATCH, flush=True)
    # Then Kumo's ingestion accepts every reading of both
    assert len(singles) == 10 and len(batches) == 1
    for message in [*singles, *batches]:
        readings, rejections = parse_payload(json.loads(json.dumps(message)), now_ms=NOW_MS + 1000)
        assert rejections == [] and readings
        assert {"temperature", "humidity", "battery"} == set(readings[0].metrics)


# --- timing and batching ---------------------------------------------------------------------


def test_readings_due_follow_the_interval() -> None:
    device = _device(interval=0.2)
    rng = random.Random(0)
    readings = device.readings_due(0.0, NOW_MS, rng) + device.readings_due(0.9, NOW_MS, rng)
    assert len(readings) == 5  # at 0.0, 0.2, 0.4, 0.6 and 0.8 s
    assert [r["ts"] for r in readings][-1] == NOW_MS - 100  # 0.1 s late, back-dated


def test_device_far_behind_skips_ahead_instead_of_bursting() -> None:
    device = _device(interval=0.01)
    readings = device.readings_due(3600.0, NOW_MS, random.Random(0))
    assert len(readings) == simulator.MAX_CATCH_UP
    assert device.next_reading_at == pytest.approx(3600.01)


def test_take_messages_waits_for_a_full_batch_unless_flushed() -> None:
    device = _device()
    device.queue_readings([{"ts": NOW_MS + i, "metrics": {"a": i}} for i in range(5)])
    full = device.take_messages(2)
    assert [len(m["readings"]) for m in full] == [2, 2] and len(device.pending) == 1
    assert device.take_messages(2, flush=True) == [{"ts": NOW_MS + 4, "metrics": {"a": 4}}]


def test_queue_readings_drops_the_oldest_beyond_a_batch() -> None:
    device = _device()
    dropped = device.queue_readings([{"ts": i, "metrics": {"a": i}} for i in range(MAX_BATCH + 3)])
    assert dropped == 3 and device.pending[0]["ts"] == 3


# --- commands --------------------------------------------------------------------------------


def test_set_interval_changes_the_reading_interval() -> None:
    device = _device(interval=1.0)
    answer = device.handle_command(
        _command(name="set_interval", params={"seconds": 0.5}), 10.0, NOW_MS
    )
    assert answer is not None and answer.payload() == {
        "id": "c-1",
        "status": "succeeded",
        "result": {"interval_seconds": 0.5},
        "error": None,
    }
    assert device.interval == 0.5 and device.next_reading_at == 10.5


@pytest.mark.parametrize("seconds", [0, -1, 0.001, 3601, "5", True, None])
def test_set_interval_with_bad_seconds_fails_and_keeps_the_interval(seconds: Any) -> None:
    device = _device(interval=1.0)
    answer = device.handle_command(
        _command(name="set_interval", params={"seconds": seconds}), 0.0, NOW_MS
    )
    assert answer is not None and answer.status == "failed" and "seconds" in (answer.error or "")
    assert device.interval == 1.0


def test_reboot_pauses_readings_for_two_seconds() -> None:
    # Given a device reading every 0.1 s
    device = _device(interval=0.1)
    rng = random.Random(0)
    # When it is told to reboot at t=5
    answer = device.handle_command(_command(name="reboot"), 5.0, NOW_MS)
    # Then it answers at once, reads nothing for 2 s, then reads again
    assert answer is not None and answer.status == "succeeded"
    assert device.readings_due(5.0 + REBOOT_SECONDS - 0.01, NOW_MS, rng) == []
    assert len(device.readings_due(5.0 + REBOOT_SECONDS + 0.05, NOW_MS, rng)) == 1


def test_ping_is_answered_with_a_pong() -> None:
    answer = _device().handle_command(_command(name="ping"), 0.0, NOW_MS)
    assert answer is not None and answer.status == "succeeded"
    assert answer.result == {"pong": True, "ts": NOW_MS}


def test_unknown_command_fails() -> None:
    answer = _device().handle_command(_command(name="self_destruct"), 0.0, NOW_MS)
    assert answer is not None and answer.payload() == {
        "id": "c-1",
        "status": "failed",
        "result": {},
        "error": "unknown command",
    }


@pytest.mark.parametrize(
    "expires_at", ["2024-05-01T11:59:59.999Z", NOW_MS - 1, NOW_MS // 1000 - 1, NOW_MS]
)
def test_expired_command_is_ignored(expires_at: Any) -> None:
    device = _device(interval=1.0)
    raw = _command(name="set_interval", params={"seconds": 5}, expires_at=expires_at)
    assert device.handle_command(raw, 0.0, NOW_MS) is None
    assert device.interval == 1.0


def test_command_before_its_expiry_runs() -> None:
    raw = _command(expires_at="2024-05-01T12:05:00.000Z")
    answer = _device().handle_command(raw, 0.0, NOW_MS)
    assert answer is not None and answer.status == "succeeded"


def test_repeated_command_gets_its_first_answer_without_running_again() -> None:
    device = _device(interval=1.0)
    raw = _command(name="set_interval", params={"seconds": 2})
    first = device.handle_command(raw, 0.0, NOW_MS)
    device.interval = 3.0  # changed since, say by another command
    again = device.handle_command(raw, 50.0, NOW_MS + 50_000)
    assert again == first and device.interval == 3.0


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'{"name": "ping"}', b'{"id": ""}'])
def test_command_without_an_id_is_ignored(raw: bytes) -> None:
    assert _device().handle_command(raw, 0.0, NOW_MS) is None


def test_command_with_an_unreadable_expiry_fails() -> None:
    answer = _device().handle_command(_command(expires_at="soon"), 0.0, NOW_MS)
    assert answer is not None and answer.status == "failed"


@pytest.mark.parametrize(
    "raw",
    [
        _command(name="ping"),
        _command(name="nope"),
        _command(name="set_interval", params={"seconds": 0}),
    ],
)
def test_command_results_are_what_kumo_accepts(raw: bytes) -> None:
    answer = _device().handle_command(raw, 0.0, NOW_MS)
    assert answer is not None
    fields = {k: v for k, v in answer.payload().items() if k != "id"}
    CommandResultRequest.model_validate(fields)


# --- arguments and inputs --------------------------------------------------------------------


def test_parse_args_defaults() -> None:
    args = simulator.parse_args(["--demo"])
    assert (args.rate, args.batch, args.duration, args.devices) == (1.0, 1, None, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["--demo", "--devices", "201"],
        ["--demo", "--devices", "0"],
        ["--demo", "--rate", "50.5"],
        ["--demo", "--rate", "0"],
        ["--demo", "--rate", "nan"],
        ["--demo", "--batch", str(MAX_BATCH + 1)],
        ["--demo", "--duration", "-1"],
        ["--org-id", ORG],
        ["--demo", "--org-id", ORG, "--keys-file", "k.json"],
        ["--demo", "--keys-file", "k.json"],
        [],
    ],
)
def test_parse_args_refuses_out_of_bounds(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        simulator.parse_args(argv)
    assert exit_info.value.code == 2


def test_parse_args_accepts_the_bounds() -> None:
    args = simulator.parse_args(
        ["--org-id", ORG, "--keys-file", "k.json", "--devices", "200", "--rate", "50"]
    )
    assert args.devices == 200 and args.rate == 50.0


def test_simulate_refuses_more_than_the_bound_before_connecting() -> None:
    keys = [DeviceKey(f"d{i}", "k") for i in range(simulator.MAX_DEVICES + 1)]
    with pytest.raises(ValueError, match="devices"):
        simulator.simulate(Fleet(ORG, keys, "http://127.0.0.1:9", "us-east-1"))


def test_load_keys_reads_a_list_and_the_seed_file(tmp_path: Path) -> None:
    listed = tmp_path / "keys.json"
    listed.write_text(json.dumps([{"id": "d1", "api_key": "k1"}]))
    seeded = tmp_path / "demo-devices.json"
    seeded.write_text(
        json.dumps({"org_id": ORG, "devices": [{"id": "d2", "name": "Probe", "api_key": "k2"}]})
    )
    assert simulator.load_keys(listed) == [DeviceKey("d1", "k1")]
    assert simulator.demo_fleet(tmp_path) == (ORG, [DeviceKey("d2", "k2", "Probe")])


def test_load_keys_reads_a_thing_name(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"id": "d1", "api_key": "k1", "thing_name": "kumo-local-d1"}]))
    assert simulator.load_keys(path) == [DeviceKey("d1", "k1", "", "kumo-local-d1")]


def test_load_keys_refuses_an_entry_without_a_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"id": "d1"}]))
    with pytest.raises(SystemExit, match="api_key"):
        simulator.load_keys(path)


# --- config shadow -------------------------------------------------------------------------------

THING = f"kumo-local-{DEVICE}"


def _shadowed(interval: float = 1.0) -> SimulatedDevice:
    device = _device(interval=interval)
    device.thing_name = THING
    return device


def _document(desired: Any) -> bytes:
    return json.dumps({"state": {"desired": desired}, "version": 3}).encode()


def test_shadow_topics_are_the_named_config_shadow() -> None:
    assert _shadowed().shadow_topic("update/delta") == (
        f"$aws/things/{THING}/shadow/name/config/update/delta"
    )


def test_a_config_delta_asks_for_the_whole_document() -> None:
    delta = {"state": {"config": {"interval_seconds": 2}, "config_version": 4}, "version": 9}
    reply = _shadowed().handle_shadow("update/delta", json.dumps(delta).encode(), 10.0)
    assert reply == ("get", {})


def test_desired_config_is_applied_and_reported() -> None:
    # Given a device reading every second
    device = _shadowed(interval=1.0)

    # When its shadow's desired config sets a 2.5 s interval
    desired = {"config": {"interval_seconds": 2.5, "unit": "c"}, "config_version": 4}
    reply = device.handle_shadow("get/accepted", _document(desired), 10.0)

    # Then it reads every 2.5 s from now on, and reports the config and version it applied
    assert device.interval == 2.5 and device.next_reading_at == 12.5
    assert reply == (
        "update",
        {"state": {"reported": {"config": desired["config"], "config_version": 4}}},
    )


def test_a_desired_version_already_applied_is_not_applied_again() -> None:
    device = _shadowed()
    desired = {"config": {"interval_seconds": 2}, "config_version": 4}
    assert device.handle_shadow("get/accepted", _document(desired), 10.0) is not None

    assert device.handle_shadow("get/accepted", _document(desired), 11.0) is None
    assert device.next_reading_at == 12.0


@pytest.mark.parametrize("seconds", [0, 3601, "5", True])
def test_a_bad_interval_keeps_the_interval_and_reports_it(seconds: Any) -> None:
    device = _shadowed(interval=1.0)
    desired = {"config": {"interval_seconds": seconds, "x": 1}, "config_version": 2}

    reply = device.handle_shadow("get/accepted", _document(desired), 10.0)

    assert device.interval == 1.0
    assert reply == (
        "update",
        {"state": {"reported": {"config": {"interval_seconds": 1.0, "x": 1}, "config_version": 2}}},
    )


@pytest.mark.parametrize(
    ("leaf", "raw"),
    [
        ("get/accepted", b"not json"),
        ("get/accepted", b"[]"),
        ("get/accepted", _document({"config": {"a": 1}})),  # no version
        ("get/accepted", _document({"config": [1], "config_version": 1})),
        ("get/accepted", _document({"config": {}, "config_version": True})),
        ("update/delta", json.dumps({"state": {"other": 1}}).encode()),  # not about config
        ("update/accepted", _document({"config": {}, "config_version": 1})),
    ],
)
def test_other_shadow_messages_are_ignored(leaf: str, raw: bytes) -> None:
    device = _shadowed()
    assert device.handle_shadow(leaf, raw, 10.0) is None
    assert device.config_version is None


def test_reports_are_what_kumo_accepts() -> None:
    from kumo.devices.schemas import ReportedConfigRequest

    desired = {"config": {"interval_seconds": 3}, "config_version": 5}
    reply = _shadowed().handle_shadow("get/accepted", _document(desired), 10.0)
    assert reply is not None
    reported = reply[1]["state"]["reported"]
    # What the config-reports rule selects from the report, checked as Kumo checks it
    request = ReportedConfigRequest(version=reported["config_version"], config=reported["config"])
    assert request.version == 5
