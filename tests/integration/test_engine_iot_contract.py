"""Contract with the local engine's IoT Core: what Kumo's device telemetry, commands and
shadows rely on, and the gaps Kumo works around.

Telemetry: devices publish JSON to `kumo/<org>/<device>/telemetry`; a topic rule projects
`*, topic(2) AS org_id, topic(3) AS device_id, timestamp() AS received_at, clientid() AS
client_id` into an SQS queue. Commands: a function publishes to `kumo/<org>/<device>/commands`
with boto3 `iot-data`; devices subscribe over MQTT (MQTT over WebSocket locally). Config:
device shadows (desired / reported / delta).

Every test creates what it needs under a unique topic root (so no rule of the deployed
template sees its traffic) and deletes it afterwards. A `test_gap_*` test pins a MiniStack
difference from AWS: when one starts failing the engine has caught up; drop the workaround
and the test together.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import boto3
import paho.mqtt.client as mqtt
import pytest
from botocore.exceptions import ClientError
from paho.mqtt.enums import CallbackAPIVersion

DEADLINE_SECONDS = 10.0
POLL_SECONDS = 0.05
ROLE_ARN = "arn:aws:iam::000000000000:role/kumo-iot-contract"
# The SQL Kumo's telemetry rule uses; {root} stands for `kumo` in the template.
TELEMETRY_SELECT = (
    "SELECT *, topic(2) AS org_id, topic(3) AS device_id, timestamp() AS received_at, "
    "clientid() AS client_id FROM '{root}/+/+/telemetry'"
)
STAR_SELECT = "SELECT * FROM '{root}/+/+/telemetry'"
# Kumo's config-reports rule; {name} stands for the shadow name `config` in the template.
CONFIG_REPORTS_SELECT = (
    "SELECT state.reported.config_version AS version, state.reported.config AS config, "
    "topic(3) AS thing_name, timestamp() AS received_at "
    "FROM '$aws/things/+/shadow/name/{name}/update/accepted' "
    "WHERE NOT isUndefined(state.reported.config_version)"
)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- AWS clients and resources ------------------------------------------------------------


@pytest.fixture
def root() -> str:
    """A topic root of this test's own, standing in for `kumo`."""
    return _unique("kumoct")


@pytest.fixture
def make_queue(aws: Callable[[str], Any]) -> Iterator[Callable[[], str]]:
    sqs = aws("sqs")
    created: list[str] = []

    def make() -> str:
        url: str = sqs.create_queue(QueueName=_unique("kumo-iot-ct-"))["QueueUrl"]
        created.append(url)
        return url

    yield make
    for url in created:
        with suppress(ClientError):
            sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def make_rule(aws: Callable[[str], Any]) -> Iterator[Callable[[str, str], str]]:
    """Create a topic rule whose one action sends to an SQS queue, as Kumo's does."""
    iot = aws("iot")
    created: list[str] = []

    def make(sql: str, queue_url: str) -> str:
        name = _unique("kumo_iot_ct_")
        iot.create_topic_rule(
            ruleName=name,
            topicRulePayload={
                "sql": sql,
                "awsIotSqlVersion": "2016-03-23",
                "ruleDisabled": False,
                "actions": [
                    {"sqs": {"queueUrl": queue_url, "roleArn": ROLE_ARN, "useBase64": False}}
                ],
            },
        )
        created.append(name)
        return name

    yield make
    for name in created:
        with suppress(ClientError):
            iot.delete_topic_rule(ruleName=name)


def receive_bodies(sqs: Any, url: str, count: int) -> list[str]:
    """Poll the queue until `count` messages arrived (deleting them); fail at the deadline."""
    bodies: list[str] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while len(bodies) < count:
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in response.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(bodies) >= count:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(bodies)} of {count} messages within the deadline: {bodies}")
        time.sleep(POLL_SECONDS)
    return bodies


def leftover_bodies(sqs: Any, url: str) -> list[str]:
    """Whatever else sits in the queue right now.

    A publish returns only after the engine ran every matching rule (the SQS send happens
    inside the iot-data Publish call, and before the PUBACK of an MQTT QoS 1 publish), so
    once a later sentinel message arrived, anything an earlier publish produced is here too.
    """
    response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [message["Body"] for message in response.get("Messages", [])]


# --- MQTT over WebSocket ------------------------------------------------------------------


def iot_host(region: str) -> str:
    """The Host header the engine routes to its MQTT broker: any `*.iot.<region>.*` host."""
    return f"kumo.iot.{region}.localhost"


class Device:
    """A paho-mqtt client speaking MQTT 3.1.1 over WebSocket to the engine's gateway port."""

    def __init__(self, gateway: str, host_header: str, client_id: str, *, clean: bool = True):
        address = urlsplit(gateway)
        self.host = address.hostname or "127.0.0.1"
        self.port = address.port or 80
        self.client_id = client_id
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self._connacks: queue.Queue[Any] = queue.Queue()
        self._subacks: queue.Queue[list[Any]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            transport="websockets",
            protocol=mqtt.MQTTv311,
            clean_session=clean,
        )
        self.client.ws_set_options(path="/mqtt", headers={"Host": host_header})
        self.client.on_connect = lambda _c, _u, _f, code, _p: self._connacks.put(code)
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self._subacks.put(codes)
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_disconnect = lambda _c, _u, _f, code, _p: self.disconnects.put(code)

    def connect(self) -> Device:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        code = self._connacks.get(timeout=DEADLINE_SECONDS)
        assert not code.is_failure, code
        return self

    def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        self.client.subscribe(topic_filter, qos)
        (granted,) = self._subacks.get(timeout=DEADLINE_SECONDS)
        assert not granted.is_failure, granted
        return int(granted.value)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=DEADLINE_SECONDS)
        assert info.is_published(), f"no PUBACK for {topic}"

    def next_message(self, topic: str) -> mqtt.MQTTMessage:
        """The next message on `topic`, skipping others; fail at the deadline."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.client_id}: nothing on {topic} within the deadline")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if message.topic == topic:
                return message

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def device(endpoints: dict[str, Any]) -> Iterator[Callable[..., Device]]:
    """Connect MQTT devices; all are disconnected at the end of the test."""
    opened: list[Device] = []

    def connect(client_id: str | None = None, *, clean: bool = True) -> Device:
        made = Device(
            endpoints["gateway"],
            iot_host(endpoints["region"]),
            client_id or _unique("kumo-dev-"),
            clean=clean,
        )
        opened.append(made)
        return made.connect()

    yield connect
    for made in opened:
        made.close()


@pytest.fixture
def thing(aws: Callable[[str], Any]) -> Iterator[str]:
    iot, data = aws("iot"), aws("iot-data")
    name = _unique("kumo-ct-thing-")
    iot.create_thing(thingName=name)
    yield name
    with suppress(ClientError):
        data.delete_thing_shadow(thingName=name)
    with suppress(ClientError):
        data.delete_thing_shadow(thingName=name, shadowName="config")
    with suppress(ClientError):
        iot.delete_thing(thingName=name)


# --- 1. topic rules ------------------------------------------------------------------------


def test_topic_rule_routes_iot_data_publish_to_sqs_with_projected_fields(
    aws: Callable[[str], Any],
    root: str,
    make_queue: Callable[[], str],
    make_rule: Callable[[str, str], str],
) -> None:
    sqs, data = aws("sqs"), aws("iot-data")
    url = make_queue()
    make_rule(TELEMETRY_SELECT.format(root=root), url)
    payload = {"readings": {"temp_c": 21.5, "rh": 40}, "seq": 7, "org_id": "spoofed"}

    before = _now_ms()
    data.publish(topic=f"{root}/org-1/dev-1/telemetry", qos=1, payload=json.dumps(payload))
    after = _now_ms()

    (body,) = receive_bodies(sqs, url, 1)
    event = json.loads(body)
    received_at = event.pop("received_at")
    # `*` merges the payload object's keys; the aliases are added after it, so a payload
    # key of the same name (org_id here) is overwritten by topic(2).
    assert event == {
        "readings": {"temp_c": 21.5, "rh": 40},
        "seq": 7,
        "org_id": "org-1",
        "device_id": "dev-1",
        "client_id": "n/a",  # clientid() of a publish that did not come over MQTT
    }
    # timestamp() is epoch milliseconds, an integer.
    assert isinstance(received_at, int)
    assert before - 1000 <= received_at <= after + 1000


def test_topic_rule_routes_mqtt_publish_with_client_id(
    aws: Callable[[str], Any],
    root: str,
    make_queue: Callable[[], str],
    make_rule: Callable[[str, str], str],
    device: Callable[..., Device],
) -> None:
    sqs = aws("sqs")
    url = make_queue()
    make_rule(TELEMETRY_SELECT.format(root=root), url)
    sensor = device()

    sensor.publish(f"{root}/org-2/dev-2/telemetry", b'{"readings":{"temp_c":19}}', qos=1)

    (body,) = receive_bodies(sqs, url, 1)
    event = json.loads(body)
    assert isinstance(event.pop("received_at"), int)
    assert event == {
        "readings": {"temp_c": 19},
        "org_id": "org-2",
        "device_id": "dev-2",
        "client_id": sensor.client_id,
    }


def test_topic_rule_where_filters_on_payload_attributes(
    aws: Callable[[str], Any],
    root: str,
    make_queue: Callable[[], str],
    make_rule: Callable[[str, str], str],
) -> None:
    sqs, data = aws("sqs"), aws("iot-data")
    url = make_queue()
    sql = TELEMETRY_SELECT.format(root=root) + (
        " WHERE NOT isUndefined(readings) OR kind = 'event' OR (seq >= 100 AND topic(2) = 'vip')"
    )
    make_rule(sql, url)
    topic = f"{root}/org-3/dev-3/telemetry"

    data.publish(topic=topic, qos=1, payload=b'{"status":"no readings"}')  # filtered out
    data.publish(topic=topic, qos=1, payload=b"not json")  # no attributes: filtered out
    data.publish(topic=f"{root}/vip/dev-3/telemetry", qos=1, payload=b'{"seq":150}')
    data.publish(topic=topic, qos=1, payload=b'{"kind":"event"}')
    data.publish(topic=topic, qos=1, payload=b'{"readings":{"t":1}}')

    bodies = receive_bodies(sqs, url, 3) + leftover_bodies(sqs, url)
    projected = {"org_id", "device_id", "received_at", "client_id"}
    payloads = [{k: v for k, v in json.loads(b).items() if k not in projected} for b in bodies]
    assert sorted(payloads, key=json.dumps) == sorted(
        [{"seq": 150}, {"kind": "event"}, {"readings": {"t": 1}}], key=json.dumps
    )


def test_topic_rule_non_object_payload_keeps_only_the_function_fields(
    aws: Callable[[str], Any],
    root: str,
    make_queue: Callable[[], str],
    make_rule: Callable[[str, str], str],
) -> None:
    sqs, data = aws("sqs"), aws("iot-data")
    url = make_queue()
    make_rule(TELEMETRY_SELECT.format(root=root), url)

    for payload in (b"not json", b"[1, 2, 3]", b"42"):
        data.publish(topic=f"{root}/org-4/dev-4/telemetry", qos=1, payload=payload)

    bodies = receive_bodies(sqs, url, 3)
    for body in bodies:
        event = json.loads(body)
        assert isinstance(event.pop("received_at"), int)
        # `*` of anything but a JSON object contributes nothing: the payload is lost.
        assert event == {"org_id": "org-4", "device_id": "dev-4", "client_id": "n/a"}


def test_topic_rule_deploys_through_cloudformation(aws: Callable[[str], Any], root: str) -> None:
    cloudformation, iot, sqs, data = (
        aws("cloudformation"),
        aws("iot"),
        aws("sqs"),
        aws("iot-data"),
    )
    stack = _unique("kumo-iot-ct-")
    rule_name = stack.replace("-", "_")  # rule names allow [a-zA-Z0-9_] only, as on AWS
    body = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{stack}-q"}},
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "iot.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                },
            },
            "Rule": {
                "Type": "AWS::IoT::TopicRule",
                "Properties": {
                    "RuleName": rule_name,
                    "TopicRulePayload": {
                        "AwsIotSqlVersion": "2016-03-23",
                        "RuleDisabled": False,
                        "Sql": TELEMETRY_SELECT.format(root=root)
                        + " WHERE NOT isUndefined(readings)",
                        "Actions": [
                            {
                                "Sqs": {
                                    "QueueUrl": {"Ref": "Queue"},
                                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                                    "UseBase64": False,
                                }
                            }
                        ],
                    },
                },
            },
        }
    }
    cloudformation.create_stack(
        StackName=stack, TemplateBody=json.dumps(body), Capabilities=["CAPABILITY_IAM"]
    )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        status = ""
        while time.monotonic() < deadline:
            status = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
            if not status.endswith("IN_PROGRESS"):
                break
            time.sleep(POLL_SECONDS)
        assert status == "CREATE_COMPLETE", status
        rule = iot.get_topic_rule(ruleName=rule_name)["rule"]
        assert rule["sql"].startswith("SELECT *, topic(2) AS org_id")
        (action,) = rule["actions"]
        assert action["sqs"]["useBase64"] is False
        assert action["sqs"]["queueUrl"].endswith(f"/{stack}-q")

        data.publish(topic=f"{root}/org-5/dev-5/telemetry", qos=1, payload=b'{"readings":{"t":5}}')
        url = sqs.get_queue_url(QueueName=f"{stack}-q")["QueueUrl"]
        (message,) = receive_bodies(sqs, url, 1)
        assert json.loads(message)["device_id"] == "dev-5"
    finally:
        cloudformation.delete_stack(StackName=stack)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            iot.get_topic_rule(ruleName=rule_name)
        except ClientError as error:
            # A missing rule answers UnauthorizedException, as on AWS.
            assert error.response["Error"]["Code"] == "UnauthorizedException"
            break
        assert time.monotonic() < deadline, "the rule outlived its stack"
        time.sleep(POLL_SECONDS)


def test_topic_rule_name_allows_only_letters_digits_underscores(
    aws: Callable[[str], Any],
) -> None:
    with pytest.raises(ClientError) as refused:
        aws("iot").create_topic_rule(
            ruleName="kumo-telemetry",
            topicRulePayload={"sql": "SELECT * FROM 'kumo/+/+/telemetry'", "actions": []},
        )
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"


def test_gap_topic_rule_boolean_literal_is_read_as_an_attribute(
    aws: Callable[[str], Any],
    root: str,
    make_queue: Callable[[], str],
    make_rule: Callable[[str, str], str],
) -> None:
    """`x = false` / `x = true` never match: the engine resolves `false` as a payload
    attribute named "false", so the comparison is Undefined. Write `NOT isUndefined(x)` or a
    bare `WHERE flag` instead."""
    sqs, data = aws("sqs"), aws("iot-data")
    url = make_queue()
    source = f"FROM '{root}/+/+/telemetry'"
    make_rule(f"SELECT 'gap' AS via {source} WHERE isUndefined(readings) = false", url)
    make_rule(f"SELECT 'gap-true' AS via {source} WHERE enabled = true", url)
    make_rule(f"SELECT 'control' AS via {source} WHERE NOT isUndefined(readings) AND enabled", url)

    data.publish(
        topic=f"{root}/org-6/dev-6/telemetry",
        qos=1,
        payload=b'{"readings":{"t":6},"enabled":true}',
    )

    bodies = receive_bodies(sqs, url, 1) + leftover_bodies(sqs, url)
    assert [json.loads(b) for b in bodies] == [{"via": "control"}], (
        "MiniStack now evaluates boolean literals in rule SQL: update this test and the notes"
    )


def test_gap_topic_rule_unimplemented_functions_resolve_to_undefined(
    aws: Callable[[str], Any],
    root: str,
    make_queue: Callable[[], str],
    make_rule: Callable[[str, str], str],
) -> None:
    """Only topic, timestamp, clientid, isUndefined, encode, newuuid, replace, principal,
    traceid and regexp_matches are implemented. Any other call (typeof, isNull, lower, cast,
    is_undefined...) is accepted at creation, drops its SELECT field and never satisfies WHERE.
    """
    sqs, data = aws("sqs"), aws("iot-data")
    url = make_queue()
    source = f"FROM '{root}/+/+/telemetry'"
    make_rule(
        f"SELECT seq, typeof(seq) AS kind, isNull(gone) AS missing, lower(name) AS low, "
        f"cast(seq AS String) AS text, readings.t AS temp {source}",
        url,
    )
    make_rule(f"SELECT 'gap' AS via {source} WHERE is_undefined(readings) = false", url)

    data.publish(
        topic=f"{root}/org-7/dev-7/telemetry",
        qos=1,
        payload=b'{"seq":1,"name":"A","readings":{"t":7}}',
    )

    bodies = receive_bodies(sqs, url, 1) + leftover_bodies(sqs, url)
    assert [json.loads(b) for b in bodies] == [{"seq": 1, "temp": 7}], (
        "MiniStack now implements more rule SQL functions: update this test and the notes"
    )


def test_gap_topic_rule_body_is_reserialized_json(
    aws: Callable[[str], Any],
    root: str,
    make_queue: Callable[[], str],
    make_rule: Callable[[str, str], str],
) -> None:
    """The SQS body is Python's `json.dumps` of the projection: `", "`/`": "` separators,
    non-ASCII as \\u escapes, 1e3 as 1000.0. Consumers must parse it, never compare text."""
    sqs, data = aws("sqs"), aws("iot-data")
    url = make_queue()
    make_rule(STAR_SELECT.format(root=root), url)

    data.publish(
        topic=f"{root}/org-8/dev-8/telemetry", qos=1, payload='{"n":1e3,"name":"café"}'.encode()
    )

    (body,) = receive_bodies(sqs, url, 1)
    assert body == '{"n": 1000.0, "name": "caf\\u00e9"}'


# --- 2. MQTT over WebSocket ----------------------------------------------------------------


def test_mqtt_subscriber_receives_iot_data_publish_on_commands_topic(
    aws: Callable[[str], Any], root: str, device: Callable[..., Device]
) -> None:
    sensor = device()
    topic = f"{root}/org-9/{sensor.client_id}/commands"
    assert sensor.subscribe(f"{root}/org-9/{sensor.client_id}/+", qos=1) == 1

    command = json.dumps({"command": "reboot", "id": "c-1"}).encode()
    aws("iot-data").publish(topic=topic, qos=1, payload=command)

    message = sensor.next_message(topic)
    assert message.payload == command  # the bytes as published, not re-serialized
    assert message.qos == 1
    assert message.retain is False


def test_mqtt_publisher_also_receives_its_own_message(
    root: str, device: Callable[..., Device]
) -> None:
    sensor = device()
    topic = f"{root}/org-9/{sensor.client_id}/telemetry"
    sensor.subscribe(topic, qos=0)

    sensor.publish(topic, b"{}", qos=1)

    assert sensor.next_message(topic).payload == b"{}"


def test_mqtt_retained_message_reaches_a_late_subscriber(
    aws: Callable[[str], Any], root: str, device: Callable[..., Device]
) -> None:
    data = aws("iot-data")
    topic = f"{root}/org-10/dev-10/config"
    data.publish(topic=topic, qos=1, retain=True, payload=b'{"interval":30}')
    try:
        assert data.get_retained_message(topic=topic)["payload"] == b'{"interval":30}'
        late = device()
        late.subscribe(topic, qos=1)
        message = late.next_message(topic)
        assert message.payload == b'{"interval":30}'
        assert message.retain is True
    finally:
        data.publish(topic=topic, qos=1, retain=True, payload=b"")  # clears it
    with pytest.raises(ClientError):
        data.get_retained_message(topic=topic)


def test_mqtt_persistent_session_queues_qos1_while_offline(
    aws: Callable[[str], Any], root: str, device: Callable[..., Device]
) -> None:
    client_id = _unique("kumo-dev-")
    topic = f"{root}/org-11/{client_id}/commands"
    first = device(client_id, clean=False)
    first.subscribe(topic, qos=1)
    first.close()

    aws("iot-data").publish(topic=topic, qos=1, payload=b'{"command":"sync"}')

    again = device(client_id, clean=False)
    assert again.next_message(topic).payload == b'{"command":"sync"}'
    again.close()
    device(client_id)  # a clean session drops the stored one


def test_mqtt_duplicate_client_id_disconnects_the_first(device: Callable[..., Device]) -> None:
    client_id = _unique("kumo-dev-")
    first = device(client_id)
    device(client_id)

    first.disconnects.get(timeout=DEADLINE_SECONDS)
    first.close()  # before paho reconnects it and takes the id back


def test_mqtt_presence_events_reach_a_subscriber(device: Callable[..., Device]) -> None:
    watcher = device()
    watcher.subscribe("$aws/events/presence/+/+", qos=1)
    sensor = device()

    event = json.loads(
        watcher.next_message(f"$aws/events/presence/connected/{sensor.client_id}").payload
    )

    assert event["clientId"] == sensor.client_id
    assert event["eventType"] == "connected"


def test_mqtt_connect_uses_the_describe_endpoint_host(
    aws: Callable[[str], Any], endpoints: dict[str, Any], root: str
) -> None:
    address = aws("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    host, _, port = address.rpartition(":")
    # `<14 hex>-ats.iot.<region>.localhost:<engine port>`; *.localhost need not resolve,
    # so connect to the gateway and send this as the Host header.
    assert host.endswith(f"-ats.iot.{endpoints['region']}.localhost")
    assert port == str(urlsplit(endpoints["gateway"]).port)
    sensor = Device(endpoints["gateway"], address, _unique("kumo-dev-")).connect()
    try:
        topic = f"{root}/org-12/{sensor.client_id}/commands"
        sensor.subscribe(topic)
        aws("iot-data").publish(topic=topic, qos=1, payload=b"{}")
        assert sensor.next_message(topic).payload == b"{}"
    finally:
        sensor.close()


def test_mqtt_handshake_without_iot_host_is_refused(endpoints: dict[str, Any]) -> None:
    gateway = urlsplit(endpoints["gateway"])
    plain = Device(endpoints["gateway"], f"{gateway.hostname}:{gateway.port}", "kumo-dev-x")
    with pytest.raises(mqtt.WebsocketConnectionError):
        plain.connect()
    plain.client.loop_stop()


def test_gap_mqtt_websocket_needs_no_credentials_and_ignores_policies(
    aws: Callable[[str], Any], root: str, device: Callable[..., Device]
) -> None:
    """Without AUTH=true nothing is checked over WebSocket: no SigV4, no certificate, no IoT
    policy, any client id, any topic. Test authorization in unit tests, not here."""
    iot = aws("iot")
    policy = _unique("kumo-ct-deny-")
    iot.create_policy(
        policyName=policy,
        policyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "iot:*", "Resource": "*"}],
            }
        ),
    )
    try:
        anonymous = device(f"someone-else-{uuid.uuid4().hex[:6]}")
        topic = f"{root}/other-org/other-device/commands"
        assert anonymous.subscribe(topic, qos=1) == 1
        anonymous.publish(topic, b"{}", qos=1)
        assert anonymous.next_message(topic).payload == b"{}"
    finally:
        iot.delete_policy(policyName=policy)


# --- 3. registry: things, certificates, policies ---------------------------------------------


def test_thing_certificate_policy_lifecycle(aws: Callable[[str], Any], thing: str) -> None:
    iot = aws("iot")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    arn, cert_id = cert["certificateArn"], cert["certificateId"]
    assert cert["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert cert["keyPair"]["PrivateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    policy = _unique("kumo-ct-device-")
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}",
            }
        ],
    }
    iot.create_policy(policyName=policy, policyDocument=json.dumps(document))
    iot.attach_policy(policyName=policy, target=arn)
    iot.attach_thing_principal(thingName=thing, principal=arn)

    assert iot.list_thing_principals(thingName=thing)["principals"] == [arn]
    assert iot.list_principal_things(principal=arn)["things"] == [thing]
    assert [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]] == [policy]
    assert iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"] == (
        "ACTIVE"
    )

    def refused(call: Callable[..., Any], **kwargs: Any) -> str:
        with pytest.raises(ClientError) as error:
            call(**kwargs)
        code: str = error.value.response["Error"]["Code"]
        return code

    assert refused(iot.delete_certificate, certificateId=cert_id) == "CertificateStateException"
    iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
    assert (
        iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]
        == "INACTIVE"
    )
    assert refused(iot.delete_certificate, certificateId=cert_id) == "DeleteConflictException"
    assert refused(iot.delete_thing, thingName=thing) == "InvalidRequestException"
    assert refused(iot.delete_policy, policyName=policy) == "DeleteConflictException"

    iot.detach_thing_principal(thingName=thing, principal=arn)
    iot.detach_policy(policyName=policy, target=arn)
    iot.delete_certificate(certificateId=cert_id)
    iot.delete_policy(policyName=policy)
    assert refused(iot.describe_certificate, certificateId=cert_id) == "ResourceNotFoundException"
    assert refused(iot.get_policy, policyName=policy) == "ResourceNotFoundException"


# --- 4. shadows ------------------------------------------------------------------------------


def test_shadow_desired_update_publishes_delta_to_subscriber(
    aws: Callable[[str], Any], thing: str, device: Callable[..., Device]
) -> None:
    data = aws("iot-data")
    base = f"$aws/things/{thing}/shadow"
    sensor = device(thing)
    sensor.subscribe(f"{base}/update/delta", qos=1)
    with pytest.raises(ClientError) as missing:
        data.get_thing_shadow(thingName=thing)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"

    data.update_thing_shadow(
        thingName=thing,
        payload=json.dumps({"state": {"desired": {"interval": 30, "led": "on"}}}),
    )

    delta = json.loads(sensor.next_message(f"{base}/update/delta").payload)
    assert delta["state"] == {"interval": 30, "led": "on"}
    assert delta["version"] == 1
    # Shadow timestamps are epoch seconds (rule timestamp() is milliseconds).
    assert abs(delta["timestamp"] - time.time()) < 60
    assert set(delta["metadata"]) == {"interval", "led"}

    # The device reports over MQTT; only what still differs stays in the delta.
    sensor.publish(
        f"{base}/update", json.dumps({"state": {"reported": {"interval": 30, "led": "off"}}})
    )
    delta = json.loads(sensor.next_message(f"{base}/update/delta").payload)
    assert delta["state"] == {"led": "on"}
    assert delta["version"] == 2

    shadow = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
    assert shadow["state"] == {
        "desired": {"interval": 30, "led": "on"},
        "reported": {"interval": 30, "led": "off"},
        "delta": {"led": "on"},
    }
    assert shadow["version"] == 2


def test_shadow_named_update_publishes_delta_to_subscriber(
    aws: Callable[[str], Any], thing: str, device: Callable[..., Device]
) -> None:
    data = aws("iot-data")
    base = f"$aws/things/{thing}/shadow/name/config"
    sensor = device(thing)
    sensor.subscribe(f"{base}/update/delta", qos=1)

    data.update_thing_shadow(
        thingName=thing, shadowName="config", payload=json.dumps({"state": {"desired": {"a": 1}}})
    )

    assert json.loads(sensor.next_message(f"{base}/update/delta").payload)["state"] == {"a": 1}
    shadow = json.loads(
        data.get_thing_shadow(thingName=thing, shadowName="config")["payload"].read()
    )
    assert shadow["state"]["desired"] == {"a": 1}


def _shadow_name() -> str:
    """A named shadow of the test's own: the template's rule listens on the name `config`."""
    return _unique("ct")


def test_shadow_update_merges_desired_and_null_removes_a_key(
    aws: Callable[[str], Any], thing: str
) -> None:
    """Kumo sends a null for every key a new config dropped (kumo.devices.shadow)."""
    data, name = aws("iot-data"), _shadow_name()

    def update(desired: dict[str, Any]) -> None:
        payload = json.dumps({"state": {"desired": desired}})
        data.update_thing_shadow(thingName=thing, shadowName=name, payload=payload)

    update({"config": {"a": 1, "led": {"color": "red", "blink": True}}, "config_version": 1})
    update({"config": {"led": {"blink": None}, "b": 2}, "config_version": 2})

    shadow = json.loads(data.get_thing_shadow(thingName=thing, shadowName=name)["payload"].read())
    assert shadow["state"]["desired"] == {
        "config": {"a": 1, "led": {"color": "red"}, "b": 2},
        "config_version": 2,
    }
    data.delete_thing_shadow(thingName=thing, shadowName=name)


def test_shadow_update_with_a_stale_document_version_is_a_conflict(
    aws: Callable[[str], Any], thing: str
) -> None:
    """Kumo's shadow writes carry the document version they read: a concurrent write wins."""
    data, name = aws("iot-data"), _shadow_name()
    first = data.update_thing_shadow(
        thingName=thing, shadowName=name, payload=json.dumps({"state": {"desired": {"v": 1}}})
    )
    version = json.loads(first["payload"].read())["version"]
    data.update_thing_shadow(
        thingName=thing,
        shadowName=name,
        payload=json.dumps({"state": {"desired": {"v": 2}}, "version": version}),
    )

    with pytest.raises(ClientError) as refused:
        data.update_thing_shadow(
            thingName=thing,
            shadowName=name,
            payload=json.dumps({"state": {"desired": {"v": 3}}, "version": version}),
        )

    assert refused.value.response["Error"]["Code"] == "ConflictException"
    shadow = json.loads(data.get_thing_shadow(thingName=thing, shadowName=name)["payload"].read())
    assert shadow["state"]["desired"] == {"v": 2} and shadow["version"] == version + 1
    data.delete_thing_shadow(thingName=thing, shadowName=name)


def test_shadow_get_over_mqtt_answers_the_whole_document(
    aws: Callable[[str], Any], thing: str, device: Callable[..., Device]
) -> None:
    """A device that boots asks for the whole desired config (what a delta leaves out)."""
    data, name = aws("iot-data"), _shadow_name()
    base = f"$aws/things/{thing}/shadow/name/{name}"
    data.update_thing_shadow(
        thingName=thing,
        shadowName=name,
        payload=json.dumps({"state": {"desired": {"config": {"a": 1}, "config_version": 4}}}),
    )
    sensor = device(thing)
    sensor.subscribe(f"{base}/get/accepted")

    sensor.publish(f"{base}/get", b"{}")

    document = json.loads(sensor.next_message(f"{base}/get/accepted").payload)
    assert document["state"]["desired"] == {"config": {"a": 1}, "config_version": 4}
    assert document["state"]["delta"] == {"config": {"a": 1}, "config_version": 4}
    data.delete_thing_shadow(thingName=thing, shadowName=name)


def test_topic_rule_on_shadow_update_accepted_sees_mqtt_reports_only(
    aws: Callable[[str], Any],
    thing: str,
    make_queue: Callable[[], str],
    make_rule: Callable[[str, str], str],
    device: Callable[..., Device],
) -> None:
    """Kumo's config-reports rule: update/accepted echoes only the sections a request sent, a
    rule on a `$aws/things/+/...` filter fires for it, nested attributes project, topic(3) is
    the thing, and Kumo's own desired writes (over HTTP) fail the WHERE."""
    sqs, data, name = aws("sqs"), aws("iot-data"), _shadow_name()
    base = f"$aws/things/{thing}/shadow/name/{name}"
    url = make_queue()
    make_rule(CONFIG_REPORTS_SELECT.format(name=name), url)
    sensor = device(thing)
    sensor.subscribe(f"{base}/update/delta")
    data.update_thing_shadow(
        thingName=thing,
        shadowName=name,
        payload=json.dumps(
            {"state": {"desired": {"config": {"a": 1, "b": 2}, "config_version": 2}}}
        ),
    )
    delta = json.loads(sensor.next_message(f"{base}/update/delta").payload)
    assert delta["state"] == {"config": {"a": 1, "b": 2}, "config_version": 2}

    # The device reports a config with a key that is not desired (merged into `reported`)
    sensor.publish(
        f"{base}/update",
        json.dumps({"state": {"reported": {"config": {"a": 1, "b": 2, "c": 3}}}}).encode(),
    )
    sensor.publish(
        f"{base}/update",
        json.dumps({"state": {"reported": {"config": {"a": 1}, "config_version": 2}}}).encode(),
    )

    (body,) = receive_bodies(sqs, url, 1)
    event = json.loads(body)
    assert isinstance(event.pop("received_at"), int)
    # The second report as sent, not the merged `reported` ({"a": 1, "b": 2, "c": 3})
    assert event == {"version": 2, "config": {"a": 1}, "thing_name": thing}
    assert leftover_bodies(sqs, url) == []
    data.delete_thing_shadow(thingName=thing, shadowName=name)


def test_gap_list_named_shadows_is_unsupported(aws: Callable[[str], Any], thing: str) -> None:
    with pytest.raises(ClientError) as refused:
        aws("iot-data").list_named_shadows_for_thing(thingName=thing)
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException", (
        "MiniStack now serves ListNamedShadowsForThing: update this test and the notes"
    )


# --- 5. the data endpoint ----------------------------------------------------------------------


def test_iot_data_client_from_aws_endpoint_url_reaches_the_broker(
    endpoints: dict[str, Any],
    root: str,
    device: Callable[..., Device],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a function gets: AWS_ENDPOINT_URL is injected, and a plain
    boto3.client("iot-data") (no endpoint_url) publishes to the local broker."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoints["gateway"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    data = boto3.client("iot-data", region_name=endpoints["region"])
    assert data.meta.endpoint_url == endpoints["gateway"]
    sensor = device()
    topic = f"{root}/org-13/{sensor.client_id}/commands"
    sensor.subscribe(topic)

    data.publish(topic=topic, qos=1, payload=b'{"command":"ping"}')

    assert sensor.next_message(topic).payload == b'{"command":"ping"}'
