"""A real MQTT broker for tests: mosquitto on a free loopback port, stoppable and restartable."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
# mosquitto (Debian's package; CI installs it) when present, else amqtt, a pure-Python broker from PyPI.
KIND = os.environ.get("DOMICILE_TEST_BROKER") or ("mosquitto" if MOSQUITTO else "amqtt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    persistent: bool = False  # keep sessions and queued messages across a restart (mosquitto only)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        if KIND == "mosquitto":
            config = self.workdir / "mosquitto.conf"
            persistence = (
                f"persistence true\npersistence_location {self.workdir}/\n"
                if self.persistent
                else "persistence false\n"
            )
            # Run as root, mosquitto drops to its own user, which cannot write its database here: it
            # would lose every session at a restart. It keeps the user it was started as.
            user = f"user {getpass.getuser()}\n"
            config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{persistence}{user}")
            command = [str(MOSQUITTO), "-c", str(config)]
        else:
            config = self.workdir / "amqtt.yaml"
            config.write_text(
                "listeners:\n  default:\n    type: tcp\n"
                f"    bind: 127.0.0.1:{self.port}\nplugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                "    allow_anonymous: true\n"
            )
            command = [str(Path(sys.executable).with_name("amqtt")), "-c", str(config)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def saved_sessions(self) -> bool:
        """Whether a persistent mosquitto wrote its database (sessions, queued messages) when it stopped."""
        return KIND == "mosquitto" and (self.workdir / "mosquitto.db").is_file()


class Subscriber:
    """Collects every message on a topic filter, in arrival order."""

    def __init__(self, broker: Broker, topic: str = "#") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *a, **k: self._ready.set()
        self._client.on_disconnect = lambda *a, **k: self._ready.clear()
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.on_connect = lambda client, *a, **k: client.subscribe(topic, qos=1)
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("subscription not acknowledged")

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        with self._cond:
            self.messages.append((message.topic, message.payload))  # type: ignore[attr-defined]
            self._cond.notify_all()

    def wait_subscribed(self, timeout: float = 15.0) -> None:
        """After a broker restart: block until the subscription is back (a clean session loses it)."""
        if not self._ready.wait(timeout):
            raise RuntimeError("the subscriber did not resubscribe")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
