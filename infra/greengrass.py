"""What a Greengrass v2 core needs from our recipes and deployments, as pure functions.

Each rule names the Greengrass v2 developer guide page or the nucleus source file it follows;
`domicile_local.greengrass` (the local core) applies the same rules to the synthesized templates.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from domicile.config.topology import Fleet, FleetMode
from domicile.errors import ConfigError
from domicile.wire.topics import ROOT as TOPIC_ROOT

NUCLEUS = "aws.greengrass.Nucleus"
TOKEN_EXCHANGE = "aws.greengrass.TokenExchangeService"
LAMBDA_MANAGER = "aws.greengrass.LambdaManager"
ROUTER = "aws.greengrass.LegacySubscriptionRouter"

# The AWS-provided component versions every deployment pins, so each core runs what we tested
# against (developer guide, each component's "Versions" and "Dependencies", checked 2026-12):
# LambdaManager 2.3.7 and LegacySubscriptionRouter 2.1.15 both accept nucleus >=2.0.0 <2.17.0.
PINNED_VERSIONS = {
    NUCLEUS: "2.16.1",
    TOKEN_EXCHANGE: "2.0.3",
    LAMBDA_MANAGER: "2.3.7",
    ROUTER: "2.1.15",
}
# The least versions our components need, declared as dependencies so a core refuses an older one:
# - recipe variables in component configuration (`interpolateComponentConfiguration`): nucleus 2.6.0
#   ("Greengrass nucleus" configuration);
# - a wildcard in a Lambda component's PUB_SUB event source: nucleus 2.6.0 and Lambda manager 2.2.5
#   ("Run AWS Lambda functions", event sources).
MIN_NUCLEUS = "2.6.0"
MIN_LAMBDA_MANAGER = "2.2.5"
# Nucleus configuration every deployment merges: recipe variables in our components' configuration
# (MODEL_DIR, SPOOL_DIR, the IPC access control) are interpolated only with this on.
NUCLEUS_MERGE = {"interpolateComponentConfiguration": True}


def artifact_digest(path: Path) -> str:
    """Recipe digests are the base64 of the artifact's SHA-256 (recipe reference, `Artifacts.Digest`)."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def content_version(base: str, rendered: Any) -> str:
    """A component version that changes with everything the component renders.

    A component name and version are immutable, and `InlineRecipe`/`LambdaFunction` are create-only
    in CloudFormation: a changed recipe under the same version fails with 409 ConflictException
    (CreateComponentVersion API). The major and minor come from `base`; the patch is a hash.
    """
    digest = hashlib.sha256(json.dumps(rendered, sort_keys=True, default=str).encode()).hexdigest()
    major, minor = base.split(".")[:2]
    return f"{int(major)}.{int(minor)}.{int(digest[:7], 16)}"


def next_major(version: str) -> str:
    return f"{int(version.split('.')[0]) + 1}.0.0"


def same_major(version: str) -> str:
    """A requirement for any version of `version`'s major line from it on."""
    return f">={version} <{next_major(version)}"


def deterministic_zip(files: list[tuple[str, Path]], out: Path) -> Path:
    """A zip whose bytes depend only on the names and contents, so its digest is stable across synths."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own, renamed into place: parallel synths may build the same archive at once.
    tmp = Path(tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)[1])
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    os.replace(tmp, out)
    return out


def archive_stem(object_key: str) -> str:
    """The folder an archive unpacks into: its file name without the extension.

    The nucleus stores an S3 artifact under the last segment of its key and unpacks it into
    `artifacts-unarchived/<component>/<version>/<file name before its last dot>`
    (nucleus `ComponentManager.getFileName`, `NucleusPaths.unarchiveArtifactPath`).
    """
    name = object_key.rsplit("/", 1)[-1]
    return name[: name.rfind(".")] if name.find(".") > 0 else name


def unarchived_path(component: str | None, object_key: str) -> str:
    """The recipe variable for where a ZIP artifact is unpacked: a dependency's, or (None) the recipe's own."""
    prefix = f"{component}:" if component else ""
    return f"{{{prefix}artifacts:decompressedPath}}/{archive_stem(object_key)}"


def published_kinds(fleet: Fleet) -> tuple[str, ...]:
    """The topic kinds a fleet's devices publish (the device policy allows no other)."""
    return {FleetMode.CLOUD_ONLY: ("escalate",), FleetMode.SPLIT: ("split",)}.get(fleet.mode, ("result", "escalate"))


def fleet_topic(fleet: Fleet, device: str, kind: str) -> str:
    return f"{TOPIC_ROOT}/{fleet.jurisdiction}/{fleet.name}/{device}/{kind}"


def router_subscriptions(fleet: Fleet, component: str) -> dict[str, Any]:
    """The legacy subscription router's configuration: the component may publish its kinds to the cloud.

    Developer guide, "Legacy subscription router", v2.1.x configuration: each key is the
    subscription's `id`; `source` is `component:<name>`; `subject` is a topic or filter; `target` `cloud`.
    The subject names the device itself: `{iot:thingName}` is interpolated in every component's
    configuration, the router's too, once `interpolateComponentConfiguration` is on (nucleus
    `KernelConfigResolver.resolve`), so a device's router passes its own topics only.
    """
    subscriptions = {}
    for kind in published_kinds(fleet):
        sid = f"{fleet.name}-{kind}-to-cloud"
        subject = fleet_topic(fleet, "{iot:thingName}", kind)
        subscriptions[sid] = {"id": sid, "source": f"component:{component}", "subject": subject, "target": "cloud"}
    return {"subscriptions": subscriptions}


def mqttproxy_access_control(fleet: Fleet, component: str) -> dict[str, Any]:
    """IPC authorization for `PublishToIoTCore` on the device's own topics only.

    Developer guide, "Publish/subscribe AWS IoT Core MQTT messages": the `aws.greengrass.ipc.mqttproxy`
    policy names the operation and the topics; `{iot:thingName}` is interpolated with the nucleus's
    `interpolateComponentConfiguration` (nucleus `KernelConfigResolver`).
    """
    policy = {
        "policyDescription": f"{fleet.name}: publish this device's envelopes to AWS IoT Core",
        "operations": ["aws.greengrass#PublishToIoTCore"],
        "resources": [fleet_topic(fleet, "{iot:thingName}", kind) for kind in published_kinds(fleet)],
    }
    pubsub = {
        "policyDescription": f"{fleet.name}: receive this device's local input",
        "operations": ["aws.greengrass#SubscribeToTopic"],
        "resources": [local_input_topic("{iot:thingName}")],
    }
    return {
        "aws.greengrass.ipc.mqttproxy": {f"{component}:mqttproxy:1": policy},
        "aws.greengrass.ipc.pubsub": {f"{component}:pubsub:1": pubsub},
    }


def local_input_topic(device: str) -> str:
    return f"domicile/local/{device}/input"


def abort_min_executed(fleet: Fleet) -> int:
    """The abort criteria's `minNumberOfExecutedThings`: at most 5, and always below the fleet size.

    IoT jobs act on abort criteria only once more than this many devices have run the job
    (IoT API `AbortCriteria.minNumberOfExecutedThings`), so a threshold at or over the fleet
    size can never fire. A one-device fleet cannot abort; its ROLLBACK still protects it.
    """
    return max(1, min(5, fleet.devices - 1))


def check_abort_criteria(fleet: Fleet, min_executed: int) -> None:
    if fleet.devices > 1 and min_executed >= fleet.devices:
        raise ConfigError(
            f"fleets.{fleet.name}.devices: the deployment's abort criteria need more than {min_executed} devices "
            f"to have run the job, and the fleet has {fleet.devices}: they can never fire"
        )
