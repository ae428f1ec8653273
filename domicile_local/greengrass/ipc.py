"""The core's IPC server: a Unix socket speaking event stream RPC, as the nucleus's does.

Components connect with the socket path and token the nucleus puts in their environment
(`AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT`, `SVCUID`; developer guide, "Component
environment variable reference"). An unknown token gets a CONNECT_ACK without the accepted flag,
which the client raises as AccessDeniedError. Served operations: `PublishToIoTCore`,
`SubscribeToTopic` and `PublishToTopic` (developer guide, "Publish/subscribe AWS IoT Core MQTT
messages" and "Publish/subscribe local messages"); others answer `ServiceError`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domicile_local.greengrass import eventstream as es
from domicile_local.greengrass.authorization import (
    CLIENT_MESSAGE,
    MQTT_PROXY,
    PUBSUB,
    Authorizer,
    Unauthorized,
    topic_matches,
)

logger = logging.getLogger("domicile_local.greengrass")
SERVICE = "aws.greengrass"
VERSION = "0.1.0"
# A Unix socket path must fit sockaddr_un. For a longer one the nucleus gives components the path
# relative to their working directory, `work/<component>` (nucleus `UnixPlatform`,
# UDS_SOCKET_PATH_MAX_LEN and IPC_SERVER_DOMAIN_SOCKET_RELATIVE_FILENAME).
UDS_SOCKET_PATH_MAX_LEN = 108
RELATIVE_TO_WORK_DIR = "../../ipc.socket"


class CloudUnavailable(Exception):
    """The core could not hand the message to AWS IoT Core (its link is down)."""


@dataclass
class _Subscription:
    connection: _Connection
    stream_id: int
    pattern: str


@dataclass
class IpcServer:
    socket_path: Path
    authorizer: Authorizer
    publish_to_cloud: Callable[[str, bytes], None]
    tokens: dict[str, str] = field(default_factory=dict)  # SVCUID -> component
    subscriptions: list[_Subscription] = field(default_factory=list)
    connections: list[_Connection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._dir_fd: int | None = None
        self.address = str(self.socket_path)  # the path this process binds and connects with
        if self.too_long:  # the same file, reached through this process's handle on its folder
            self._dir_fd = os.open(self.socket_path.parent, os.O_RDONLY)
            self.address = f"/proc/self/fd/{self._dir_fd}/{self.socket_path.name}"
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        os.chmod(self.socket_path, 0o600)
        self._server.listen(16)
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"ipc:{self.socket_path.name}")
        self._thread.start()

    @property
    def too_long(self) -> bool:
        return len(str(self.socket_path)) >= UDS_SOCKET_PATH_MAX_LEN

    @property
    def component_path(self) -> str:
        """What a component's AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT says."""
        return RELATIVE_TO_WORK_DIR if self.too_long else str(self.socket_path)

    def token_for(self, component: str) -> str:
        token = base64.urlsafe_b64encode(os.urandom(24)).decode()
        with self._lock:
            self.tokens[token] = component
        return token

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            connection = _Connection(self, sock)
            with self._lock:
                self.connections.append(connection)
            threading.Thread(target=connection.serve, daemon=True).start()

    def deliver_local(self, topic: str, message: dict[str, Any]) -> int:
        """Local publish/subscribe: hand `message` to every stream subscribed to a matching topic."""
        with self._lock:
            targets = [s for s in self.subscriptions if topic_matches(s.pattern, topic)]
        for sub in targets:
            sub.connection.send_event(sub.stream_id, "aws.greengrass#SubscriptionResponseMessage", message)
        return len(targets)

    def close(self) -> None:
        """The core stops: its socket goes, and so does every component's connection."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            connections, self.connections = list(self.connections), []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self._dir_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._dir_fd)


class _Connection:
    def __init__(self, server: IpcServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.component: str | None = None
        self._send_lock = threading.Lock()

    def send(self, message: es.Message) -> None:
        with self._send_lock, contextlib.suppress(OSError):
            self.sock.sendall(es.encode(message))

    def send_event(self, stream_id: int, model: str, body: dict[str, Any], *, error: bool = False,
                   terminate: bool = False) -> None:  # fmt: skip
        headers = {
            ":message-type": es.APPLICATION_ERROR if error else es.APPLICATION_MESSAGE,
            ":message-flags": es.TERMINATE_STREAM if terminate else 0,
            ":stream-id": stream_id,
            ":content-type": "application/json",
            "service-model-type": model,
        }
        self.send(es.Message(headers, json.dumps(body).encode()))

    def serve(self) -> None:
        try:
            while (message := es.read_message(self.sock)) is not None:
                self._handle(message)
        except (OSError, ValueError) as exc:
            logger.debug("IPC connection closed: %r", exc)
        finally:
            with self.server._lock:
                self.server.subscriptions = [s for s in self.server.subscriptions if s.connection is not self]
                if self in self.server.connections:
                    self.server.connections.remove(self)
            with contextlib.suppress(OSError):
                self.sock.close()

    def _handle(self, message: es.Message) -> None:
        kind = message.message_type
        if kind == es.CONNECT:
            self._connect(message)
        elif kind == es.PING:
            self.send(es.Message({":message-type": es.PING_RESPONSE, ":message-flags": 0, ":stream-id": 0}))
        elif kind == es.APPLICATION_MESSAGE and self.component and message.headers.get("operation"):
            self._operation(message)

    def _connect(self, message: es.Message) -> None:
        try:
            token = json.loads(message.payload or b"{}").get("authToken", "")
        except json.JSONDecodeError:
            token = ""
        with self.server._lock:
            self.component = self.server.tokens.get(token)
        accepted = self.component is not None and message.headers.get(":version") == VERSION
        flags = es.CONNECTION_ACCEPTED if accepted else 0
        self.send(es.Message({":message-type": es.CONNECT_ACK, ":message-flags": flags, ":stream-id": 0}))
        if not accepted:  # the client closes the connection when it reads the refusal
            logger.info("IPC connection refused: unknown SVCUID")
            self.component = None

    def _operation(self, message: es.Message) -> None:
        operation = str(message.headers["operation"])
        stream = message.stream_id
        try:
            request = json.loads(message.payload or b"{}")
        except json.JSONDecodeError:
            self._error(stream, "ServiceError", "request is not valid JSON")
            return
        handler = {
            "aws.greengrass#PublishToIoTCore": self._publish_to_iot_core,
            "aws.greengrass#SubscribeToTopic": self._subscribe_to_topic,
            "aws.greengrass#PublishToTopic": self._publish_to_topic,
        }.get(operation)
        if handler is None:
            self._error(stream, "ServiceError", f"operation {operation} is not served by the local core")
            return
        try:
            handler(stream, operation, request)
        except Unauthorized:
            self._error(stream, "UnauthorizedError", CLIENT_MESSAGE)
        except CloudUnavailable as exc:
            self._error(stream, "ServiceError", str(exc))

    def _error(self, stream: int, shape: str, text: str) -> None:
        self.send_event(stream, f"{SERVICE}#{shape}", {"message": text}, error=True, terminate=True)

    def _publish_to_iot_core(self, stream: int, operation: str, request: dict[str, Any]) -> None:
        assert self.component is not None
        topic = str(request.get("topicName", ""))
        self.server.authorizer.check(self.component, MQTT_PROXY, operation, topic)
        payload = base64.b64decode(request.get("payload") or "")
        try:
            self.server.publish_to_cloud(topic, payload)
        except Exception as exc:  # the nucleus answers ServiceError "Publish to topic X failed: ..."
            raise CloudUnavailable(f"Publish to topic {topic} failed: {exc}") from exc
        self.send_event(stream, f"{SERVICE}#PublishToIoTCoreResponse", {}, terminate=True)

    def _subscribe_to_topic(self, stream: int, operation: str, request: dict[str, Any]) -> None:
        assert self.component is not None
        topic = str(request.get("topic", ""))
        self.server.authorizer.check(self.component, PUBSUB, operation, topic)
        with self.server._lock:
            self.server.subscriptions.append(_Subscription(self, stream, topic))
        self.send_event(stream, f"{SERVICE}#SubscribeToTopicResponse", {"topicName": topic})

    def _publish_to_topic(self, stream: int, operation: str, request: dict[str, Any]) -> None:
        assert self.component is not None
        topic = str(request.get("topic", ""))
        self.server.authorizer.check(self.component, PUBSUB, operation, topic)
        published = request.get("publishMessage") or {}
        for kind in ("jsonMessage", "binaryMessage"):
            if kind in published:
                message = {kind: {**published[kind], "context": {"topic": topic}}}
                self.server.deliver_local(topic, message)
        self.send_event(stream, f"{SERVICE}#PublishToTopicResponse", {}, terminate=True)
