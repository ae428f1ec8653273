"""How a device publishes: one interface, three implementations that pass the same contract tests.

- `GreengrassTransport`: `greengrasssdk.client("iot-data").publish`, in a Lambda component on a
  Greengrass core (through `aws.greengrass.LegacySubscriptionRouter`);
- `IpcTransport`: IPC `PublishToIoTCore` (awsiotsdk), in a generic component on a Greengrass core;
- `MqttTransport`: paho-mqtt to any MQTT broker (IoT Core with X.509, a local broker in simulation).

`publish` returns once the message is handed over (QoS 1 acknowledged, or accepted by the
Greengrass core); otherwise it raises `TransportUnavailable` and the caller spools the message.
A core that refuses the message (no router subscription, no IPC authorization) raises
`TransportRefused`: the message stays spooled, and the refusal is kept to be reported.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse


class TransportUnavailable(Exception):
    """The link is down or the message was not acknowledged in time: keep it and retry later."""


class TransportRefused(TransportUnavailable):
    """The core refused the message: its deployment does not allow it. Retrying will not help."""


class Transport(Protocol):
    def publish(self, topic: str, payload: bytes) -> None: ...

    def close(self) -> None: ...


class GreengrassTransport:
    """Publishes through the Greengrass core (its router forwards to IoT Core, or queues when offline)."""

    def __init__(self, queue_full_policy: str = "AllOrException") -> None:
        import greengrasssdk  # only importable inside the Greengrass Lambda runtime (or its test fake)

        self._client = greengrasssdk.client("iot-data")
        self._queue_full_policy = queue_full_policy

    def publish(self, topic: str, payload: bytes) -> None:
        try:
            self._client.publish(topic=topic, payload=payload, queueFullPolicy=self._queue_full_policy)
        except Exception as exc:  # the SDK raises its own InvocationException, or IPC errors
            # A core's Lambda manager answers an unrouted publish with HTTP 400 "No subscription exists ..."
            # (seen in a core's log; Greengrass v2 developer guide, "Legacy subscription router").
            error = TransportRefused if "No subscription exists" in str(exc) else TransportUnavailable
            raise error(f"greengrass publish to {topic} failed: {exc}") from exc

    def close(self) -> None:
        return None


class IpcTransport:
    """Publishes with Greengrass IPC `PublishToIoTCore` at QoS 1, as a generic component does.

    The socket and token default to the environment the nucleus gives a component
    (`AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT`, `SVCUID`).
    """

    def __init__(
        self, *, socket_path: str | None = None, auth_token: str | None = None, timeout_s: float = 5.0
    ) -> None:
        from awsiot import greengrasscoreipc
        from awsiot.greengrasscoreipc import clientv2

        sdk: Any = greengrasscoreipc  # awsiotsdk ships no type hints
        v2: Any = clientv2
        self._connect: Callable[[], Any] = lambda: v2.GreengrassCoreIPCClientV2(
            client=sdk.connect(ipc_socket=socket_path, authtoken=auth_token, timeout=timeout_s)
        )
        self._client: Any = None
        self._lock = threading.Lock()
        try:
            self._client = self._connect()
        except Exception:  # the core is not up yet: the first publish tries again
            self._client = None

    def publish(self, topic: str, payload: bytes) -> None:
        from awsiot.greengrasscoreipc.model import QOS, UnauthorizedError

        with self._lock:
            try:
                if self._client is None:
                    self._client = self._connect()
                self._client.publish_to_iot_core(topic_name=topic, qos=QOS.AT_LEAST_ONCE, payload=payload)
            except UnauthorizedError as exc:  # the recipe's aws.greengrass.ipc.mqttproxy policy does not allow it
                raise TransportRefused(f"IPC publish to {topic} refused: {exc.message}") from exc
            except Exception as exc:  # the socket closed (core restarting), ServiceError, timeout
                self._drop()
                raise TransportUnavailable(f"IPC publish to {topic} failed: {exc!r}") from exc

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def close(self) -> None:
        with self._lock:
            self._drop()


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
            raise ValueError(f"broker URL {url!r} must look like mqtt://host:1883 or mqtts://host:8883")
        tls = parsed.scheme == "mqtts"
        return cls(parsed.hostname, parsed.port or (8883 if tls else 1883), tls)


class MqttTransport:
    """paho-mqtt with QoS 1; reconnects by itself, and reports a down link instead of queueing."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        ack_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.endpoint = MqttEndpoint.parse(url)
        self.ack_timeout_s = ack_timeout_s
        self._connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(min_delay=1, max_delay=8)
        if self.endpoint.tls:
            self._client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=30)
        self._client.loop_start()
        self._connected.wait(connect_timeout_s)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes) -> None:
        if not self._connected.is_set():
            raise TransportUnavailable(f"not connected to {self.endpoint.host}:{self.endpoint.port}")
        info = self._client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(self.ack_timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise TransportUnavailable(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            # paho may still deliver it after a reconnect: downstream idempotency absorbs that copy.
            raise TransportUnavailable(f"no PUBACK for {topic} within {self.ack_timeout_s}s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
