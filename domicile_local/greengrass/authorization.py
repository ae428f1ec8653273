"""IPC authorization from each component's `accessControl` configuration.

As the nucleus's `AuthorizationHandler`: a request is allowed when one of the component's policies
for the IPC service names the operation (or `*`) and a resource that matches; `PublishToIoTCore`
and the pubsub operations match resources MQTT-style (`+`, `#`) and with `*`. A refusal reaches the
client as `UnauthorizedError` "Not Authorized"; the core logs "Principal <component> is not
authorized to perform <service>:<operation> on resource <resource>" (nucleus `MqttProxyIPCAgent`).
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("domicile_local.greengrass")

MQTT_PROXY = "aws.greengrass.ipc.mqttproxy"
PUBSUB = "aws.greengrass.ipc.pubsub"
CLIENT_MESSAGE = "Not Authorized"


class Unauthorized(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def topic_matches(pattern: str, topic: str) -> bool:
    """An MQTT filter (`+` one level, `#` the rest) or a `*` glob, against a concrete topic."""
    if "*" in pattern:
        return fnmatch.fnmatchcase(topic, pattern)
    parts, levels = pattern.split("/"), topic.split("/")
    for i, part in enumerate(parts):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(parts) == len(levels)


@dataclass
class Authorizer:
    policies: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def register(self, component: str, access_control: dict[str, Any]) -> None:
        self.policies[component] = {
            service: list(by_id.values())
            for service, by_id in (access_control or {}).items()
            if isinstance(by_id, dict)
        }

    def check(self, component: str, service: str, operation: str, resource: str) -> None:
        for policy in self.policies.get(component, {}).get(service, []):
            operations = policy.get("operations", [])
            if operation not in operations and "*" not in operations:
                continue
            if any(topic_matches(str(pattern), resource) for pattern in policy.get("resources", [])):
                return
        reason = f"Principal {component} is not authorized to perform {service}:{operation} on resource {resource}"
        logger.info("%s", reason)
        raise Unauthorized(reason)
