"""Device config over the config shadow, end to end: a config set over HTTP reaches an MQTT
device as a shadow delta, the device's report on the shadow comes back through the topic rule,
SQS and the batch function, stale and unknown reports change nothing, and another org can
neither read nor set the config."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from botocore.exceptions import ClientError
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.simulator import DeviceKey, Fleet, simulate
from tests.integration.conftest import Api, Outbox, signed_up_user

DEADLINE_SECONDS = 30.0


@pytest.fixture(scope="module")
def fleet(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "shadower")
    token = owner["access_token"]
    org_id = api.post("/api/v1/orgs", token=token, json={"name": "Shadowed"}).json()["id"]
    mqtt_device = api.post(
        "/api/v1/devices",
        token=token,
        json={"org_id": org_id, "name": "thermostat", "certificate": True},
    )
    assert mqtt_device.status_code == 201, mqtt_device.text
    http_device = api.post(
        "/api/v1/devices", token=token, json={"org_id": org_id, "name": "sleeper"}
    )
    assert http_device.status_code == 201, http_device.text
    outsider = signed_up_user(api, outbox, "shadow-stranger")["access_token"]
    return {
        "token": token,
        "device": mqtt_device.json(),
        "plain": http_device.json(),
        "outsider": outsider,
    }


class ShadowDevice:
    """An MQTT client over WebSocket using its thing's config shadow, as a device would."""

    def __init__(self, endpoints: dict[str, Any], thing: str) -> None:
        gateway = urlsplit(endpoints["gateway"])
        self.base = f"$aws/things/{thing}/shadow/name/config"
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._subacks: queue.Queue[Any] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=thing,  # the client id a device's policy allows: its thing name
            transport="websockets",
            protocol=mqtt.MQTTv311,
        )
        self.client.ws_set_options(
            path="/mqtt", headers={"Host": f"kumo.iot.{endpoints['region']}.localhost"}
        )
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self._subacks.put(codes)
        self.client.connect(gateway.hostname or "127.0.0.1", gateway.port or 4566, keepalive=30)
        self.client.loop_start()
        for leaf in ("update/delta", "get/accepted"):
            self.client.subscribe(f"{self.base}/{leaf}", qos=1)
            (granted,) = self._subacks.get(timeout=DEADLINE_SECONDS)
            assert not granted.is_failure, granted

    def publish(self, leaf: str, payload: Any) -> None:
        info = self.client.publish(f"{self.base}/{leaf}", json.dumps(payload), qos=1)
        info.wait_for_publish(timeout=DEADLINE_SECONDS)
        assert info.is_published(), f"no PUBACK for {leaf}"

    def report(self, version: int, config: dict[str, Any]) -> None:
        reported = {"config": config, "config_version": version}
        self.publish("update", {"state": {"reported": reported}})

    def next_on(self, leaf: str, within: float = DEADLINE_SECONDS) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                break
            if message.topic == f"{self.base}/{leaf}":
                payload: dict[str, Any] = json.loads(message.payload)
                return payload
        raise AssertionError(f"nothing on {leaf} within {within} s")

    def close(self) -> None:
        # An open MQTT connection would hold up the engine's shutdown.
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def thermostat(endpoints: dict[str, Any], fleet: dict[str, Any]) -> Iterator[ShadowDevice]:
    made = ShadowDevice(endpoints, fleet["device"]["thing_name"])
    yield made
    made.close()


def _config_path(fleet: dict[str, Any], key: str = "device") -> str:
    return f"/api/v1/devices/{fleet[key]['id']}/config"


def _put(api: Api, fleet: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    answer = api.put(_config_path(fleet), token=fleet["token"], json={"config": config})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _wait_reported(
    api: Api, fleet: dict[str, Any], version: int, config: dict[str, Any]
) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        view: dict[str, Any] = api.get(_config_path(fleet), token=fleet["token"]).json()
        if view["reported_version"] == version and view["reported"] == config:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"report of {version} not recorded: {view}")
        time.sleep(0.2)


def _wait_reports_drained(aws: Callable[[str], Any], endpoints: dict[str, Any]) -> None:
    """Until the config-reports queue holds nothing, visible or in flight."""
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=f"kumo-{endpoints['stage']}-config-reports")["QueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if all(counts[name] == "0" for name in names):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"config reports still queued: {counts}")
        time.sleep(0.2)


def test_config_reaches_the_device_as_a_delta_and_its_report_comes_back(
    api: Api, fleet: dict[str, Any], thermostat: ShadowDevice
) -> None:
    # Given a device listening on its config shadow
    config = {"interval_seconds": 20, "unit": "celsius", "tag": uuid.uuid4().hex[:6]}

    # When a member sets its config
    started = time.monotonic()
    version = _put(api, fleet, config)["version"]

    # Then the device receives the new version as a delta
    delta = thermostat.next_on("update/delta")
    delta_seconds = time.monotonic() - started
    assert delta["state"]["config_version"] == version
    assert delta["state"]["config"] == config  # nothing of it was reported yet

    # And when it reports what it applied, the API shows that version as applied
    reported_at = time.monotonic()
    thermostat.report(version, config)
    view = _wait_reported(api, fleet, version, config)
    report_seconds = time.monotonic() - reported_at
    assert view["version"] == version and view["config"] == config
    print(f"PUT → delta {delta_seconds:.2f} s; report → recorded {report_seconds:.2f} s")


def test_a_device_that_boots_gets_the_whole_config_from_the_shadow(
    api: Api, fleet: dict[str, Any], thermostat: ShadowDevice
) -> None:
    # Given a config that drops keys an earlier one had
    _put(api, fleet, {"interval_seconds": 5, "led": {"color": "red", "blink": True}})
    version = _put(api, fleet, {"interval_seconds": 5, "led": {"color": "blue"}})["version"]

    # When the device asks for its shadow / Then it gets exactly the latest config
    thermostat.publish("get", {})
    document = thermostat.next_on("get/accepted")
    assert document["state"]["desired"] == {
        "config": {"interval_seconds": 5, "led": {"color": "blue"}},
        "config_version": version,
    }


def test_stale_and_unknown_reports_change_nothing(
    api: Api,
    fleet: dict[str, Any],
    thermostat: ShadowDevice,
    aws: Callable[[str], Any],
    endpoints: dict[str, Any],
) -> None:
    # Given version N recorded as applied
    older = _put(api, fleet, {"interval_seconds": 60})["version"]
    current = _put(api, fleet, {"interval_seconds": 30})["version"]
    thermostat.report(current, {"interval_seconds": 30})
    _wait_reported(api, fleet, current, {"interval_seconds": 30})

    # When the device reports an older version, and one that was never set
    thermostat.report(older, {"interval_seconds": 60})
    thermostat.report(current + 50, {"interval_seconds": 1})
    _wait_reports_drained(aws, endpoints)

    # Then version N stays the applied one
    view = api.get(_config_path(fleet), token=fleet["token"]).json()
    assert view["reported_version"] == current
    assert view["reported"] == {"interval_seconds": 30}
    assert view["version"] == current


def test_device_without_a_thing_gets_no_shadow(
    api: Api, fleet: dict[str, Any], aws: Callable[[str], Any], endpoints: dict[str, Any]
) -> None:
    answer = api.put(_config_path(fleet, "plain"), token=fleet["token"], json={"config": {"a": 1}})
    assert answer.status_code == 200, answer.text

    # It reads its config over HTTP; no shadow was made under the name its thing would have
    seen = api.get("/api/v1/device/config", token=fleet["plain"]["api_key"]).json()
    assert seen["config"] == {"a": 1}
    thing = f"kumo-{endpoints['stage']}-{fleet['plain']['id']}"
    with pytest.raises(ClientError) as missing:
        aws("iot-data").get_thing_shadow(thingName=thing, shadowName="config")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_another_org_can_neither_see_nor_set_the_config(
    api: Api, fleet: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    before = api.get(_config_path(fleet), token=fleet["token"]).json()
    outsider = fleet["outsider"]

    assert api.get(_config_path(fleet), token=outsider).status_code == 404
    refused = api.put(_config_path(fleet), token=outsider, json={"config": {"evil": True}})
    assert refused.status_code == 404, refused.text

    after = api.get(_config_path(fleet), token=fleet["token"]).json()
    assert after == before
    shadow = aws("iot-data").get_thing_shadow(
        thingName=fleet["device"]["thing_name"], shadowName="config"
    )
    desired = json.loads(shadow["payload"].read())["state"]["desired"]
    assert desired["config_version"] == before["version"] and "evil" not in desired["config"]


def test_bad_config_is_refused_and_changes_nothing(api: Api, fleet: dict[str, Any]) -> None:
    before = api.get(_config_path(fleet), token=fleet["token"]).json()

    answer = api.put(_config_path(fleet), token=fleet["token"], json={"config": "not an object"})

    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert api.get(_config_path(fleet), token=fleet["token"]).json() == before


def test_simulated_device_obeys_the_config_shadow(
    api: Api, fleet: dict[str, Any], endpoints: dict[str, Any]
) -> None:
    # Given a simulated device with a thing, reading every 2 s
    token = fleet["token"]
    registered = api.post(
        "/api/v1/devices",
        token=token,
        json={"org_id": fleet["device"]["org_id"], "name": "sim", "certificate": True},
    )
    assert registered.status_code == 201, registered.text
    device = registered.json()
    path = f"/api/v1/devices/{device['id']}/config"
    run = Fleet(
        org_id=device["org_id"],
        keys=[DeviceKey(device["id"], device["api_key"], "sim", device["thing_name"])],
        gateway=endpoints["gateway"],
        region=endpoints["region"],
        rate=0.5,
    )
    stop, ready, outcome = threading.Event(), threading.Event(), {}

    def play() -> None:
        try:
            outcome["totals"] = simulate(run, stop=stop, ready=ready, say=lambda _line: None)
        except BaseException as error:  # handed to the test thread
            outcome["error"] = error
            ready.set()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    try:
        assert ready.wait(DEADLINE_SECONDS) and "error" not in outcome, outcome

        def applied(version: int) -> dict[str, Any]:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while True:
                view: dict[str, Any] = api.get(path, token=token).json()
                if view["reported_version"] == version:
                    return view
                if time.monotonic() > deadline:
                    raise AssertionError(f"version {version} not reported: {view}")
                time.sleep(0.2)

        # When a member sets a half-second interval / Then the device applies and reports it
        first = api.put(path, token=token, json={"config": {"interval_seconds": 0.5}}).json()
        assert applied(first["version"])["reported"] == {"interval_seconds": 0.5}

        # And an interval out of range is reported as the one it kept
        bad = api.put(path, token=token, json={"config": {"interval_seconds": 0, "x": 1}}).json()
        assert applied(bad["version"])["reported"] == {"interval_seconds": 0.5, "x": 1}
    finally:
        stop.set()
        thread.join(DEADLINE_SECONDS)  # every client is disconnected on the way out
    assert not thread.is_alive() and "error" not in outcome, outcome
    assert outcome["totals"].configs == 2
