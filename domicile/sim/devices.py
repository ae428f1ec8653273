"""Simulated devices: the real edge component code, the MQTT transport, held-out digits data."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from domicile.edge.device import EdgeDevice
from domicile.edge.forward import StoreAndForward
from domicile.edge.spool import Spool
from domicile.edge.topics import DeviceIdentity
from domicile.edge.transport import MqttTransport, Transport, TransportUnavailable
from domicile.runtime import ModelRuntime
from domicile.split.runtime import SplitHead
from domicile.topology import Fleet, FleetMode


class SwitchableLink:
    """A transport whose link the simulation can cut (`--offline FLEET=SECONDS`)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.offline_until = 0.0

    def publish(self, topic: str, payload: bytes) -> None:
        if time.monotonic() < self.offline_until:
            raise TransportUnavailable("link cut by the simulation")
        self.inner.publish(topic, payload)

    def close(self) -> None:
        self.inner.close()


def drift(x: np.ndarray) -> np.ndarray:
    """A fading sensor: 30% less contrast, still whole grey levels (the edge model escalates ~2.5x more)."""
    return np.rint(x * 0.7).astype(np.float32)


@dataclass
class DeviceRun:
    identity: DeviceIdentity
    fleet: Fleet
    device: EdgeDevice
    link: SwitchableLink
    x: np.ndarray
    y: np.ndarray
    rate: float
    drift_from: int | None
    started: dict[str, float] = field(default_factory=dict)  # case id -> wall time
    labels: dict[str, int] = field(default_factory=dict)
    decisions: list[tuple[float, bool]] = field(default_factory=list)  # (time, escalated)
    done: bool = False
    error: str | None = None

    def features(self, i: int) -> np.ndarray:
        """Case i of this device's stream, faded from the middle on when the run drifts."""
        row = self.x[i]
        return drift(row) if self.drift_from is not None and i >= self.drift_from else row

    def run(self, stop: threading.Event, offline: tuple[float, float] | None) -> None:
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        begin = time.monotonic()
        try:
            for i in range(len(self.x)):
                if stop.is_set():
                    break
                if offline and not self.link.offline_until and time.monotonic() - begin >= offline[0]:
                    self.link.offline_until = time.monotonic() + offline[1]
                features = self.features(i)
                case_id = f"{self.identity.device}-{i}"
                self.labels[case_id] = int(self.y[i])
                self.started[case_id] = time.time()
                (decision,) = self.device.infer([case_id], features[None, :])
                self.decisions.append((time.time(), bool(decision["escalated"])))
                self.device.tick()
                if interval:
                    time.sleep(max(0.0, begin + (i + 1) * interval - time.monotonic()))
            self.device.close()
            deadline = time.monotonic() + 60
            while len(self.device.forward.spool) and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.2)
                self.device.forward.replay()
        except Exception as exc:  # reported, never silently lost
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done = True


def build_devices(
    fleet: Fleet,
    count: int,
    records: int,
    broker_url: str,
    runtime: ModelRuntime,
    model_name: str,
    mode: FleetMode,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    rate: float,
    with_drift: bool,
    spool_root: str,
    split: SplitHead | None = None,
) -> list[DeviceRun]:
    runs = []
    for i in range(count):
        identity = DeviceIdentity(f"{fleet.name}-{i}", fleet.name, fleet.jurisdiction, fleet.home_region)
        order = np.random.default_rng([seed, i, len(fleet.name)]).permutation(len(x))
        order = np.resize(order, records)  # each device: its own shuffled stream of held-out rows
        link = SwitchableLink(MqttTransport(broker_url, identity.device, ack_timeout_s=5))
        device = EdgeDevice(
            identity, runtime, model_name, mode,
            StoreAndForward(link, Spool(f"{spool_root}/{identity.device}")),
            split=split if mode is FleetMode.SPLIT else None,
        )  # fmt: skip
        runs.append(DeviceRun(identity, fleet, device, link, x[order], y[order], rate,
                              records // 2 if with_drift else None))  # fmt: skip
    return runs
