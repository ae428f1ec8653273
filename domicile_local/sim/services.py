"""Local stand-ins for AWS endpoints: moto's server for the APIs, one MQTT broker per region."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


def _tool(name: str) -> str:
    sibling = Path(sys.executable).with_name(name)
    found = str(sibling) if sibling.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed; run `make setup`")
    return found


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Services:
    """One moto server per region (as each region has its own endpoints; it also spreads the load)."""

    aws: dict[str, Service] = field(default_factory=dict)
    brokers: dict[str, Service] = field(default_factory=dict)

    def stop(self) -> None:
        for service in [*self.brokers.values(), *self.aws.values()]:
            service.stop()


def start_moto(region: str, log_dir: Path) -> Service:
    port = free_port()
    log = log_dir / f"moto-{region}.log"
    process = subprocess.Popen(
        # moto's server, with its DynamoDB transactions fixed to cost what DynamoDB's do (see the module)
        [sys.executable, "-m", "domicile_local.sim.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    _wait_listening(port, "moto server")
    return Service(f"moto:{region}", f"http://127.0.0.1:{port}", process, log)


def start_amqtt(region: str, log_dir: Path) -> Service:
    """An embedded (pure-Python) MQTT broker standing in for one region's IoT Core endpoint."""
    port = free_port()
    config = log_dir / f"amqtt-{region}.yaml"
    config.write_text(
        "listeners:\n  default:\n    type: tcp\n"
        f"    bind: 127.0.0.1:{port}\n    max_connections: 200\n"
        "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
    )
    log = log_dir / f"amqtt-{region}.log"
    process = subprocess.Popen([_tool("amqtt"), "-c", str(config)], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _wait_listening(port, f"MQTT broker for {region}")
    return Service(f"broker:{region}", f"mqtt://127.0.0.1:{port}", process, log)
