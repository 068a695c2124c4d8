"""Simulated devices for the local stack: telemetry over MQTT, and the commands they obey.

    python -m infra.local.simulator --demo [--devices 2] [--rate 1] [--duration 30] [--batch 1]
    python -m infra.local.simulator --org-id ORG --keys-file keys.json [--endpoints PATH]

Each device is one paho-mqtt client (client id = device id) speaking MQTT 3.1.1 over
WebSocket to the engine's gateway port, as tests/integration/test_devices_telemetry.py does.
It publishes drifting temperature, humidity and battery readings to
`kumo/<org>/<device>/telemetry` in the device payload contract (kumo.telemetry.contract):
`{"ts", "metrics"}`, or `{"readings": [...]}` with `--batch K`. It listens on `.../commands`
and answers `{"id", "status", "result", "error"}` on `.../commands/result`:

    set_interval {"seconds": n}   n seconds between readings from now on
    reboot                         no readings for 2 s
    ping                           answered at once
    anything else                  fails with "unknown command"

A command whose `expires_at` has passed is ignored. A repeated command id (QoS 1 may deliver
twice) gets its first answer again and does not run twice.

A device with an IoT thing (`thing_name` in the keys file) also obeys its config shadow, as
README.md describes devices should: it asks for the shadow on connecting and on every delta,
applies the whole desired config of a version it has not applied yet (`interval_seconds`
sets the reading interval, as set_interval does), and reports `{"config", "config_version"}`.

`--demo` takes the demo org's devices that the seed wrote to .local/state/demo-devices.json;
`--keys-file` takes a JSON list of {"id", "api_key"}. The local broker checks no credentials
(tests/integration/test_engine_iot_contract.py), so the keys never go over MQTT; they are read
so that one file describes a fleet for MQTT and for the HTTP device routes alike.

`make simulate` runs two demo devices in the foreground. `make up` runs them in the
background (pid in .local/state/simulator.pid, output in .local/state/simulator.log) and
`make down` stops them before the engine, since an open MQTT WebSocket delays its shutdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE = ROOT / ".local" / "state"
DEFAULT_ENDPOINTS = ROOT / ".local" / "endpoints.json"
DEMO_DEVICES_FILE = "demo-devices.json"
PID_FILE = "simulator.pid"
LOG_FILE = "simulator.log"

MAX_DEVICES = 200
MAX_RATE = 50.0  # readings per device per second
MAX_BATCH = 500  # the payload contract's limit on readings per message
MIN_INTERVAL_SECONDS = 1 / MAX_RATE
MAX_INTERVAL_SECONDS = 3600.0
REBOOT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 10.0
DRAIN_TIMEOUT_SECONDS = 3.0
# A device that falls further behind than this (a suspended laptop) skips ahead instead of
# sending a burst of back-dated readings.
MAX_CATCH_UP = 50
REMEMBERED_COMMANDS = 256
SHADOW_NAME = "config"  # kumo.devices.shadow.SHADOW_NAME
SHADOW_LEAVES = ("update/delta", "get/accepted")
# Background runs (make up) are gentle on the shared engine: a reading every 10 s per device.
BACKGROUND_RATE = 0.1
BACKGROUND_REPORT_SECONDS = 10.0

RANGES: dict[str, tuple[float, float]] = {
    "temperature": (-20.0, 45.0),
    "humidity": (5.0, 95.0),
    "battery": (0.0, 100.0),
}


def log(message: str) -> None:
    print(f"[simulator] {message}", flush=True)


# --- readings --------------------------------------------------------------------------------


def _clamp(value: float, metric: str) -> float:
    low, high = RANGES[metric]
    return min(high, max(low, value))


@dataclass
class Sensor:
    """A random walk pulled back toward the device's own baseline, so values drift plausibly
    without wandering off; the battery drains and is swapped for a full one at 5 %."""

    temperature: float
    humidity: float
    battery: float
    temperature_base: float
    humidity_base: float

    @classmethod
    def new(cls, rng: random.Random) -> Sensor:
        temperature, humidity = rng.uniform(18.0, 24.0), rng.uniform(40.0, 60.0)
        return cls(
            temperature=temperature,
            humidity=humidity,
            battery=rng.uniform(60.0, 100.0),
            temperature_base=temperature,
            humidity_base=humidity,
        )

    def step(self, rng: random.Random) -> dict[str, float]:
        self.temperature = _clamp(
            self.temperature
            + 0.05 * (self.temperature_base - self.temperature)
            + rng.gauss(0, 0.2),
            "temperature",
        )
        self.humidity = _clamp(
            self.humidity + 0.05 * (self.humidity_base - self.humidity) + rng.gauss(0, 0.5),
            "humidity",
        )
        self.battery = _clamp(self.battery - rng.uniform(0.0, 0.02), "battery")
        if self.battery < 5.0:
            self.battery = 100.0
        return {
            "temperature": round(self.temperature, 2),
            "humidity": round(self.humidity, 2),
            "battery": round(self.battery, 1),
        }


def telemetry_message(readings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One reading as it is, several as a batch."""
    return dict(readings[0]) if len(readings) == 1 else {"readings": list(readings)}


# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    command_id: str
    status: Literal["succeeded", "failed"]
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.command_id,
            "status": self.status,
            "result": self.result,
            "error": self.error,
        }


def expiry_ms(value: Any) -> int | None:
    """`expires_at` as epoch ms: ISO-8601 text, epoch ms, or epoch seconds (small numbers)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expires_at is not a time")
    if isinstance(value, int | float) and math.isfinite(value):
        return int(value if value >= 1e11 else value * 1000)
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("expires_at needs a time zone")
        return int(moment.timestamp() * 1000)
    raise ValueError("expires_at is not a time")


@dataclass
class SimulatedDevice:
    """One device's state; pure: the clock is passed in, the network is elsewhere."""

    device_id: str
    org_id: str
    sensor: Sensor
    interval: float
    next_reading_at: float = 0.0
    paused_until: float = 0.0
    pending: list[dict[str, Any]] = field(default_factory=list)
    answered: OrderedDict[str, CommandResult] = field(default_factory=OrderedDict)
    thing_name: str | None = None
    config_version: int | None = None

    def topic(self, leaf: str) -> str:
        return f"kumo/{self.org_id}/{self.device_id}/{leaf}"

    def shadow_topic(self, leaf: str) -> str:
        return f"$aws/things/{self.thing_name}/shadow/name/{SHADOW_NAME}/{leaf}"

    def readings_due(self, now: float, now_ms: int, rng: random.Random) -> list[dict[str, Any]]:
        """The readings whose time has come (`now` is monotonic seconds)."""
        if now < self.paused_until:
            return []
        readings: list[dict[str, Any]] = []
        while self.next_reading_at <= now and len(readings) < MAX_CATCH_UP:
            late_ms = round((now - self.next_reading_at) * 1000)
            readings.append({"ts": now_ms - late_ms, "metrics": self.sensor.step(rng)})
            self.next_reading_at += self.interval
        if self.next_reading_at <= now:
            self.next_reading_at = now + self.interval
        return readings

    def queue_readings(self, readings: list[dict[str, Any]]) -> int:
        """Hold readings until they fill a batch; the oldest go past MAX_BATCH (dropped)."""
        self.pending.extend(readings)
        dropped = max(0, len(self.pending) - MAX_BATCH)
        del self.pending[:dropped]
        return dropped

    def take_messages(self, batch: int, *, flush: bool = False) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(self.pending) >= batch or (flush and self.pending):
            chunk, self.pending = self.pending[:batch], self.pending[batch:]
            messages.append(telemetry_message(chunk))
        return messages

    def handle_command(self, raw: bytes, now: float, now_ms: int) -> CommandResult | None:
        """The answer to a command message, or None when it is to be ignored (malformed, so
        there is no id to answer; or expired)."""
        try:
            command = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(command, dict):
            return None
        command_id = command.get("id")
        if not isinstance(command_id, str) or not command_id:
            return None
        if command_id in self.answered:
            return self.answered[command_id]
        try:
            expires = expiry_ms(command.get("expires_at"))
        except (TypeError, ValueError) as error:
            return self._remember(CommandResult(command_id, "failed", error=str(error)))
        if expires is not None and expires <= now_ms:
            return None
        params = command.get("params")
        params = params if isinstance(params, dict) else {}
        return self._remember(self._run(command_id, command.get("name"), params, now, now_ms))

    def _run(
        self, command_id: str, name: Any, params: dict[str, Any], now: float, now_ms: int
    ) -> CommandResult:
        if name == "set_interval":
            if not self._set_interval(params.get("seconds"), now):
                error = (
                    f"params.seconds must be a number from {MIN_INTERVAL_SECONDS} "
                    f"to {MAX_INTERVAL_SECONDS:.0f}"
                )
                return CommandResult(command_id, "failed", error=error)
            return CommandResult(command_id, "succeeded", {"interval_seconds": self.interval})
        if name == "reboot":
            self.paused_until = now + REBOOT_SECONDS
            self.next_reading_at = self.paused_until
            return CommandResult(command_id, "succeeded", {"paused_seconds": REBOOT_SECONDS})
        if name == "ping":
            return CommandResult(command_id, "succeeded", {"pong": True, "ts": now_ms})
        return CommandResult(command_id, "failed", error="unknown command")

    def _set_interval(self, seconds: Any, now: float) -> bool:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS
        ):
            return False
        self.interval = float(seconds)
        self.next_reading_at = now + self.interval
        return True

    def handle_shadow(self, leaf: str, raw: bytes, now: float) -> tuple[str, dict[str, Any]] | None:
        """What to publish on the config shadow (leaf, payload) after a message on it.

        A delta lists only what differs from what was reported, and says nothing of keys the
        config dropped, so it is taken as a cue to get the whole document. A desired version
        applied already is not applied again, which also ends the engine's delta after a
        report that differs from the desired config (an interval out of range)."""
        try:
            document = json.loads(raw)
        except ValueError:
            return None
        state = document.get("state") if isinstance(document, dict) else None
        if not isinstance(state, dict):
            return None
        if leaf == "update/delta":
            return ("get", {}) if "config_version" in state else None
        desired = state.get("desired")
        if leaf != "get/accepted" or not isinstance(desired, dict):
            return None
        version, config = desired.get("config_version"), desired.get("config")
        readable = isinstance(version, int) and not isinstance(version, bool)
        if not readable or not isinstance(config, dict) or version == self.config_version:
            return None
        applied = dict(config)
        if "interval_seconds" in config and not self._set_interval(config["interval_seconds"], now):
            applied["interval_seconds"] = self.interval  # what it runs with instead
        self.config_version = version
        return "update", {"state": {"reported": {"config": applied, "config_version": version}}}

    def _remember(self, result: CommandResult) -> CommandResult:
        self.answered[result.command_id] = result
        while len(self.answered) > REMEMBERED_COMMANDS:
            self.answered.popitem(last=False)
        return result


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceKey:
    device_id: str
    api_key: str
    name: str = ""
    thing_name: str = ""


def load_keys(path: Path) -> list[DeviceKey]:
    """A JSON list of {"id", "api_key"} (and "thing_name" for a device with a thing), or
    {"devices": [...]} as the seed writes it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"no such keys file: {path}") from None
    except ValueError as error:
        raise SystemExit(f"{path} is not JSON: {error}") from None
    entries = data.get("devices") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise SystemExit(f"{path} lists no devices")
    keys: list[DeviceKey] = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("id") or not entry.get("api_key"):
            raise SystemExit(f"{path}: each device needs an id and an api_key")
        keys.append(
            DeviceKey(
                str(entry["id"]),
                str(entry["api_key"]),
                str(entry.get("name", "")),
                str(entry.get("thing_name") or ""),
            )
        )
    return keys


def demo_fleet(state_dir: Path) -> tuple[str, list[DeviceKey]]:
    path = state_dir / DEMO_DEVICES_FILE
    if not path.exists():
        raise SystemExit(f"no demo devices in {path}: run `make up` first (its seed writes them)")
    org_id = json.loads(path.read_text()).get("org_id")
    if not org_id:
        raise SystemExit(f"{path} names no org_id")
    return str(org_id), load_keys(path)


def _bounded(kind: Callable[[str], Any], low: float, high: float, *, open_low: bool = False) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text}") from None
        too_low = value <= low if open_low else value < low
        if too_low or value > high or not math.isfinite(value):
            side = "above" if open_low else "from"
            raise argparse.ArgumentTypeError(f"must be {side} {low:g} up to {high:g}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local.simulator",
        description="Simulated devices publishing telemetry to the local stack over MQTT.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo", action="store_true", help="the demo org's seeded devices")
    source.add_argument("--org-id", help="the devices' organization (with --keys-file)")
    parser.add_argument("--keys-file", type=Path, help='JSON list of {"id", "api_key"}')
    parser.add_argument(
        "--devices",
        type=_bounded(int, 1, MAX_DEVICES),
        help=f"how many of the listed devices to run (1-{MAX_DEVICES}; default all)",
    )
    parser.add_argument(
        "--rate",
        type=_bounded(float, 0, MAX_RATE, open_low=True),
        default=1.0,
        help=f"readings per device per second (up to {MAX_RATE:g}; default 1)",
    )
    parser.add_argument(
        "--duration",
        type=_bounded(float, 0, 7 * 24 * 3600, open_low=True),
        help="seconds to run (default: until Ctrl-C or SIGTERM)",
    )
    parser.add_argument(
        "--batch",
        type=_bounded(int, 1, MAX_BATCH),
        default=1,
        help=f"readings per message (1-{MAX_BATCH}; default 1)",
    )
    parser.add_argument("--endpoints", type=Path, default=DEFAULT_ENDPOINTS)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help=argparse.SUPPRESS)
    parser.add_argument(
        "--report-every",
        type=_bounded(float, 0, 3600, open_low=True),
        default=1.0,
        help="seconds between summary lines (default 1)",
    )
    args = parser.parse_args(argv)
    if args.org_id and args.keys_file is None:
        parser.error("--org-id needs --keys-file")
    if args.demo and args.keys_file is not None:
        parser.error("--demo takes its keys from the seed; leave out --keys-file")
    return args


# --- network ---------------------------------------------------------------------------------


class DeviceLink:
    """One device's MQTT client; its callbacks run on paho's thread and only hand over."""

    def __init__(
        self,
        device: SimulatedDevice,
        gateway: str,
        region: str,
        inbox: queue.Queue[tuple[SimulatedDevice, str, bytes]],
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.device = device
        self.subscribed = threading.Event()
        self.last_publish: Any = None
        address = urlsplit(gateway)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device.device_id,
            transport="websockets",
            protocol=mqtt.MQTTv311,
        )
        # The engine serves MQTT over WebSocket on its main port for an IoT data host name.
        self.client.ws_set_options(path="/mqtt", headers={"Host": f"kumo.iot.{region}.localhost"})
        self.client.reconnect_delay_set(1, 10)
        self.client.max_queued_messages_set(2 * MAX_BATCH)

        topics = [(device.topic("commands"), 1)]
        if device.thing_name:
            topics += [(device.shadow_topic(leaf), 1) for leaf in SHADOW_LEAVES]

        def on_connect(client: Any, _data: Any, _flags: Any, code: Any, _props: Any) -> None:
            if not code.is_failure:  # subscribing here makes every reconnect resubscribe
                client.subscribe(topics)

        def on_subscribe(client: Any, _data: Any, _mid: Any, _codes: Any, _props: Any) -> None:
            self.subscribed.set()
            if device.thing_name:  # the config it missed while away
                client.publish(device.shadow_topic("get"), b"{}", qos=1)

        def on_disconnect(_c: Any, _data: Any, _flags: Any, _code: Any, _props: Any) -> None:
            self.subscribed.clear()

        def on_message(_c: Any, _data: Any, message: Any) -> None:
            inbox.put((device, str(message.topic), bytes(message.payload)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_disconnect = on_disconnect
        self.client.on_message = on_message

    @property
    def ready(self) -> bool:
        return self.subscribed.is_set() and bool(self.client.is_connected())

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def publish_telemetry(self, message: dict[str, Any]) -> int:
        self.publish("telemetry", message)
        return len(message.get("readings", [message]))

    def publish(self, leaf: str, payload: dict[str, Any]) -> None:
        self.send(self.device.topic(leaf), payload)

    def send(self, topic: str, payload: dict[str, Any]) -> None:
        self.last_publish = self.client.publish(
            topic, json.dumps(payload, separators=(",", ":")), qos=1
        )

    def drain(self, deadline: float) -> None:
        if self.last_publish is None or not self.ready:
            return
        with suppress(RuntimeError, ValueError):  # refused by a full queue: nothing to wait for
            self.last_publish.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Totals:
    readings: int = 0
    messages: int = 0
    commands: int = 0
    ignored: int = 0
    dropped: int = 0
    configs: int = 0

    def count(self, readings: int) -> None:
        self.messages += 1
        self.readings += readings

    def minus(self, other: Totals) -> Totals:
        return Totals(
            self.readings - other.readings,
            self.messages - other.messages,
            self.commands - other.commands,
            self.ignored - other.ignored,
            self.dropped - other.dropped,
            self.configs - other.configs,
        )


@dataclass(frozen=True)
class Fleet:
    org_id: str
    keys: list[DeviceKey]
    gateway: str
    region: str
    rate: float = 1.0
    batch: int = 1
    duration: float | None = None
    report_every: float = 1.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def simulate(
    fleet: Fleet,
    *,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
    say: Callable[[str], None] = log,
    seed: int | None = None,
) -> Totals:
    """Run the fleet until `stop` is set or the duration ends; every client is disconnected
    on the way out. `ready` is set once every device listens for commands."""
    if not 1 <= len(fleet.keys) <= MAX_DEVICES:
        raise ValueError(f"1 to {MAX_DEVICES} devices, not {len(fleet.keys)}")
    if not 0 < fleet.rate <= MAX_RATE or not 1 <= fleet.batch <= MAX_BATCH:
        raise ValueError("rate or batch out of bounds")
    stop = stop or threading.Event()
    rng = random.Random(seed)  # noqa: S311 (made-up sensor values, not secrets)
    inbox: queue.Queue[tuple[SimulatedDevice, str, bytes]] = queue.Queue()
    started = time.monotonic()
    devices = [
        SimulatedDevice(
            device_id=key.device_id,
            org_id=fleet.org_id,
            sensor=Sensor.new(rng),
            interval=1 / fleet.rate,
            # Spread the first readings over one interval rather than all at once.
            next_reading_at=started + rng.uniform(0, 1 / fleet.rate),
            thing_name=key.thing_name or None,
        )
        for key in fleet.keys
    ]
    links = {
        device.device_id: DeviceLink(device, fleet.gateway, fleet.region, inbox)
        for device in devices
    }
    totals = Totals()
    try:
        for link in links.values():
            link.start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
        while not all(link.ready for link in links.values()) and not stop.is_set():
            if time.monotonic() > deadline:
                if not any(link.ready for link in links.values()):
                    raise SystemExit(
                        f"no device reached the MQTT broker at {fleet.gateway} within "
                        f"{CONNECT_TIMEOUT_SECONDS:.0f} s; is the stack up (`make up`)?"
                    )
                break  # the others keep trying in the background
            time.sleep(0.05)
        connected = sum(link.ready for link in links.values())
        say(
            f"{connected}/{len(links)} devices connected to {fleet.gateway} for org "
            f"{fleet.org_id}; {fleet.rate:g} readings/s each, {fleet.batch} per message"
        )
        if ready is not None:
            ready.set()
        _loop(fleet, devices, links, inbox, stop, totals, say, rng)
    finally:
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        for device in devices:
            link = links[device.device_id]
            if link.ready:
                for message in device.take_messages(fleet.batch, flush=True):
                    totals.count(link.publish_telemetry(message))
        for link in links.values():
            link.drain(deadline)
        for link in links.values():
            link.stop()
    say(
        f"stopped after {time.monotonic() - started:.1f} s: {totals.readings} readings in "
        f"{totals.messages} messages, {totals.commands} commands answered, "
        f"{totals.ignored} ignored, {totals.dropped} readings dropped, "
        f"{totals.configs} configs applied"
    )
    return totals


def _loop(
    fleet: Fleet,
    devices: list[SimulatedDevice],
    links: dict[str, DeviceLink],
    inbox: queue.Queue[tuple[SimulatedDevice, str, bytes]],
    stop: threading.Event,
    totals: Totals,
    say: Callable[[str], None],
    rng: random.Random,
) -> None:
    started = time.monotonic()
    end = started + fleet.duration if fleet.duration else math.inf
    next_report, reported = started + fleet.report_every, Totals()
    while not stop.is_set():
        now = time.monotonic()
        if now >= end:
            break
        # Waiting on the inbox (not sleeping) answers a command as soon as it arrives.
        wake = min([d.next_reading_at for d in devices] + [next_report, end])
        try:
            first = [inbox.get(timeout=min(0.05, max(0.0, wake - now)))]
        except queue.Empty:
            first = []
        for device, topic, raw in first + _drained(inbox):
            if device.thing_name and topic.startswith(device.shadow_topic("")):
                reply = device.handle_shadow(
                    topic.removeprefix(device.shadow_topic("")), raw, time.monotonic()
                )
                if reply is not None:
                    links[device.device_id].send(device.shadow_topic(reply[0]), reply[1])
                    totals.configs += reply[0] == "update"
                continue
            answer = device.handle_command(raw, time.monotonic(), _now_ms())
            if answer is None:
                totals.ignored += 1
                continue
            links[device.device_id].publish("commands/result", answer.payload())
            totals.commands += 1
        now, now_ms = time.monotonic(), _now_ms()
        for device in devices:
            totals.dropped += device.queue_readings(device.readings_due(now, now_ms, rng))
            link = links[device.device_id]
            if not link.ready:
                continue  # readings wait (up to a batch's worth) for the connection
            for message in device.take_messages(fleet.batch):
                totals.count(link.publish_telemetry(message))
        if now >= next_report:
            delta, reported = totals.minus(reported), Totals(**vars(totals))
            connected = sum(link.ready for link in links.values())
            dropped = f", {delta.dropped} dropped" if delta.dropped else ""
            say(
                f"{time.strftime('%H:%M:%S')} {connected}/{len(links)} connected | readings "
                f"+{delta.readings} ({totals.readings}) in +{delta.messages} messages{dropped} | "
                f"commands +{delta.commands} ({totals.commands}), ignored {totals.ignored} | "
                f"configs +{delta.configs} ({totals.configs})"
            )
            next_report += fleet.report_every


def _drained(
    inbox: queue.Queue[tuple[SimulatedDevice, str, bytes]],
) -> list[tuple[SimulatedDevice, str, bytes]]:
    items = []
    while True:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            return items


# --- the background run that make up starts ----------------------------------------------------


def background_pid(state_dir: Path) -> int | None:
    """The pid of the background simulator, if that process is alive and is one."""
    pid_file = state_dir / PID_FILE
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    # Where /proc exists, make sure a recycled pid is not taken for the simulator.
    if cmdline.exists() and b"infra.local.simulator" not in cmdline.read_bytes():
        return None
    return pid


def start_background(
    state_dir: Path, org_id: str, endpoints_file: Path, timeout: float = 15
) -> tuple[int, bool]:
    """Start the demo devices detached from this process, unless they run already: the pid,
    and whether it was started now. Returns once the devices are connected."""
    running = background_pid(state_dir)
    if running is not None:
        return running, False
    command = [
        sys.executable,
        "-m",
        "infra.local.simulator",
        "--org-id",
        org_id,
        "--keys-file",
        str(state_dir / DEMO_DEVICES_FILE),
        "--endpoints",
        str(endpoints_file),
        "--rate",
        str(BACKGROUND_RATE),
        "--report-every",
        str(BACKGROUND_REPORT_SECONDS),
    ]
    log_file = state_dir / LOG_FILE
    offset = log_file.stat().st_size if log_file.exists() else 0
    with log_file.open("ab") as log_stream:
        process = subprocess.Popen(  # noqa: S603 (this module, by the running interpreter)
            command,
            cwd=ROOT,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (state_dir / PID_FILE).write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while b"devices connected" not in log_file.read_bytes()[offset:]:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_background(state_dir)
            raise RuntimeError(f"the simulator did not start; see {log_file}")
        time.sleep(0.1)
    return process.pid, True


def stop_background(state_dir: Path, timeout: float = 10) -> bool:
    """SIGTERM lets it disconnect every client; then it is gone or killed."""
    pid = background_pid(state_dir)
    if pid is None:
        (state_dir / PID_FILE).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            pass  # not our child (make up started it): poll
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    return True


# --- command line ----------------------------------------------------------------------------


def fleet_from_args(args: argparse.Namespace) -> Fleet:
    if args.demo:
        org_id, keys = demo_fleet(args.state_dir)
    else:
        org_id, keys = args.org_id, load_keys(args.keys_file)
    wanted = args.devices or len(keys)
    if wanted > len(keys):
        raise SystemExit(f"--devices {wanted}, but only {len(keys)} devices are listed")
    if wanted > MAX_DEVICES:
        raise SystemExit(f"at most {MAX_DEVICES} devices; pass --devices")
    try:
        endpoints = json.loads(args.endpoints.read_text())
    except FileNotFoundError:
        raise SystemExit(f"no {args.endpoints}: run `make up` first") from None
    return Fleet(
        org_id=org_id,
        keys=keys[:wanted],
        gateway=endpoints["gateway"],
        region=endpoints["region"],
        rate=args.rate,
        batch=args.batch,
        duration=args.duration,
        report_every=args.report_every,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    fleet = fleet_from_args(args)
    if args.demo and background_pid(args.state_dir) not in (None, os.getpid()):
        # Same devices, same client ids: the broker would keep disconnecting one for the other.
        stop_background(args.state_dir)
        log("stopped the background demo devices `make up` started; `make up` starts them again")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    simulate(fleet, stop=stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
