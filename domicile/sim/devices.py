"""Simulated devices: the real edge component code, the MQTT transport, held-out digits data."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

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


class PowerCut(BaseException):
    """The device loses power: what it held in memory is gone, only its disk remains.

    A BaseException, so no handler on the way up can mistake it for an error it may recover from.
    """


class PowerCutSpool(Spool):
    """A spool whose next write, once armed, is torn: half its bytes reach the disk, never renamed."""

    armed = False

    def _place(self, tmp: Path, final: Path) -> None:
        if self.armed:
            self.armed = False
            with open(tmp, "r+b") as handle:
                handle.truncate(tmp.stat().st_size // 2)
            raise PowerCut(f"power cut while writing {tmp.name}")
        super()._place(tmp, final)


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
    restart: Callable[[EdgeDevice], EdgeDevice] | None = None  # a new device on the same disk (power cuts)
    power_cuts: list[int] = field(default_factory=list)  # input positions after which a spool write is torn
    restarts: int = 0
    torn_writes: int = 0  # interrupted spool writes the restarted device found and discarded
    resumed: int = 0  # cases handled again after a restart (sent again under the same ids, or never sent)
    reached: int = 0  # input positions handed to the device so far
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
        begin = time.monotonic()
        position = 0
        try:
            while True:
                try:
                    self._stream(position, begin, stop, offline)
                    break
                except PowerCut:
                    # Restarted like Greengrass restarts a component: a new device from the disk alone,
                    # resuming its input where the spool says the output stopped being durable.
                    assert self.restart is not None
                    self.device = self.restart(self.device)
                    self.restarts += 1
                    self.torn_writes += self.device.forward.spool.torn_writes
                    position = self.device.forward.spool.resume_point()
                    self.resumed += self.reached - position
            deadline = time.monotonic() + 60
            while len(self.device.forward.spool) and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.2)
                self.device.forward.replay()
        except Exception as exc:  # reported, never silently lost
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done = True

    def _stream(self, start: int, begin: float, stop: threading.Event, offline: tuple[float, float] | None) -> None:
        """Cases start..end of this device's input, then the packer's last envelope."""
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        for i in range(start, len(self.x)):
            if stop.is_set():
                break
            if offline and not self.link.offline_until and time.monotonic() - begin >= offline[0]:
                self.link.offline_until = time.monotonic() + offline[1]
            if self.power_cuts and i >= self.power_cuts[0]:
                self.power_cuts.pop(0)
                spool = self.device.forward.spool
                assert isinstance(spool, PowerCutSpool)
                spool.armed = True  # the next spool write is torn
            features = self.features(i)
            case_id = f"{self.identity.device}-{i}"
            self.labels[case_id] = int(self.y[i])
            self.started.setdefault(case_id, time.time())  # a resumed case keeps its first start
            self.reached = i + 1
            (decision,) = self.device.infer([case_id], features[None, :], positions=[i])
            self.decisions.append((time.time(), bool(decision["escalated"])))
            self.device.tick()
            if interval:
                time.sleep(max(0.0, begin + (i + 1) * interval - time.monotonic()))
        self.device.close()


def _new_device(
    identity: DeviceIdentity, link: SwitchableLink, spool_dir: str, may_lose_power: bool,
    runtime: ModelRuntime, model_name: str, mode: FleetMode, split: SplitHead | None,
) -> EdgeDevice:  # fmt: skip
    # A device that may lose power spools every message first (write-ahead), so it can resume its input.
    spool = PowerCutSpool(spool_dir) if may_lose_power else Spool(spool_dir)
    return EdgeDevice(identity, runtime, model_name, mode, StoreAndForward(link, spool, write_ahead=may_lose_power),
                      split=split)  # fmt: skip


def _restart(make: Callable[[], EdgeDevice], broker_url: str, old: EdgeDevice) -> EdgeDevice:
    """The device after a power cut: a new connection as the same thing, a new device from the disk."""
    link = old.forward.transport
    assert isinstance(link, SwitchableLink)
    link.inner.close()
    link.inner = MqttTransport(broker_url, old.identity.device, ack_timeout_s=5)
    new = make()
    new.stats, new.forward.stats = old.stats, old.forward.stats  # the run's counters of work done
    return new


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
    power_cuts: int = 0,
) -> list[DeviceRun]:
    """A fleet's devices; with `power_cuts`, its first device loses power that many times mid-spool-write."""
    runs = []
    for i in range(count):
        identity = DeviceIdentity(f"{fleet.name}-{i}", fleet.name, fleet.jurisdiction, fleet.home_region)
        order = np.random.default_rng([seed, i, len(fleet.name)]).permutation(len(x))
        order = np.resize(order, records)  # each device: its own shuffled stream of held-out rows
        link = SwitchableLink(MqttTransport(broker_url, identity.device, ack_timeout_s=5))
        cuts = power_cuts if i == 0 else 0
        make = partial(_new_device, identity, link, f"{spool_root}/{identity.device}", cuts > 0,
                       runtime, model_name, mode, split if mode is FleetMode.SPLIT else None)  # fmt: skip
        cut_at = [records * (k + 1) // (cuts + 1) for k in range(cuts)]  # spread over the stream
        restart = partial(_restart, make, broker_url)
        runs.append(DeviceRun(identity, fleet, make(), link, x[order], y[order], rate,
                              records // 2 if with_drift else None, restart, cut_at))  # fmt: skip
    return runs
