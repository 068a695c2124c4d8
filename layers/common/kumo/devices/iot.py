"""IoT Core identities for devices that speak MQTT: a thing, a certificate and a policy that
lets the certificate use only its own device's topics."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from kumo.core.config import get_settings


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    thing_name: str
    certificate_id: str
    certificate_arn: str
    certificate_pem: str
    private_key: str


@cache
def _iot() -> Any:
    import boto3

    return boto3.client("iot")


@cache
def data_client() -> Any:
    """iot-data: publishes to devices and reads and writes their shadows."""
    import boto3  # only the functions that talk to devices pay for the client

    endpoint = get_settings().iot_data_endpoint
    # AWS_ENDPOINT_URL is boto3's own: on the local engine it already points every client at
    # the engine's broker. On AWS, iot-data needs the account's data endpoint.
    if endpoint and not os.environ.get("AWS_ENDPOINT_URL"):
        return boto3.client("iot-data", endpoint_url=f"https://{endpoint}")
    return boto3.client("iot-data")


def thing_name(device_id: str) -> str:
    return f"kumo-{get_settings().stage}-{device_id}"


def device_id_of(thing: str) -> str | None:
    """The device a thing name of this stage stands for (thing_name's inverse), or None."""
    prefix = thing_name("")
    return thing[len(prefix) :] if thing.startswith(prefix) and len(thing) > len(prefix) else None


def topic_root(org_id: str, device_id: str) -> str:
    return f"kumo/{org_id}/{device_id}"


def _policy_document(org_id: str, device_id: str, account_region: str) -> str:
    root = topic_root(org_id, device_id)
    thing = thing_name(device_id)
    topic = f"arn:aws:iot:{account_region}:topic"
    topic_filter = f"arn:aws:iot:{account_region}:topicfilter"
    shadow = f"$aws/things/{thing}/shadow"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Connect",
                    "Resource": f"arn:aws:iot:{account_region}:client/{thing}",
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Publish",
                    "Resource": [
                        f"{topic}/{root}/telemetry",
                        f"{topic}/{root}/status",
                        f"{topic}/{root}/commands/result",
                        f"{topic}/{shadow}/*",
                    ],
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": [f"{topic_filter}/{root}/commands", f"{topic_filter}/{shadow}/*"],
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Receive",
                    "Resource": [f"{topic}/{root}/commands", f"{topic}/{shadow}/*"],
                },
            ],
        }
    )


def create_identity(org_id: str, device_id: str) -> DeviceIdentity:
    """Thing, active certificate and policy, attached; the private key leaves only here."""
    iot = _iot()
    name = thing_name(device_id)
    iot.create_thing(thingName=name, attributePayload={"attributes": {"org_id": org_id}})
    created = iot.create_keys_and_certificate(setAsActive=True)
    # arn:aws:iot:<region>:<account>:cert/<id>: the policy's resources use the same prefix.
    account_region = ":".join(created["certificateArn"].split(":")[3:5])
    iot.create_policy(
        policyName=name, policyDocument=_policy_document(org_id, device_id, account_region)
    )
    iot.attach_policy(policyName=name, target=created["certificateArn"])
    iot.attach_thing_principal(thingName=name, principal=created["certificateArn"])
    return DeviceIdentity(
        thing_name=name,
        certificate_id=created["certificateId"],
        certificate_arn=created["certificateArn"],
        certificate_pem=created["certificatePem"],
        private_key=created["keyPair"]["PrivateKey"],
    )


def delete_identity(thing: str, certificate_id: str) -> None:
    """Deactivate first: a revoked device must not connect even if a later step fails."""
    iot = _iot()
    described = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    arn = described["certificateArn"]
    iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    iot.detach_thing_principal(thingName=thing, principal=arn)
    iot.detach_policy(policyName=thing, target=arn)
    iot.delete_certificate(certificateId=certificate_id, forceDelete=True)
    iot.delete_policy(policyName=thing)
    iot.delete_thing(thingName=thing)
