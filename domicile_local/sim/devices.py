"""Simulated devices: each one a local Greengrass core that deploys its fleet's deployment.

A device is what the local core deployed from the synthesized templates: the fleet's edge component
with the environment the nucleus gives it (settings, model files placed from the model component's
artifact, spool in its work folder). It publishes as that component does on a core: a Lambda
component through the core's legacy subscription router, a generic component with the real IPC
client against the core's IPC server. The core's own MQTT connection (client id: the thing name)
carries the messages to the region's broker. Data: each fleet's cases (sim.data: the user's, the model's
validation data, or held-out digits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from domicile.config.topology import Fleet
from domicile.edge.device import EdgeDevice
from domicile.edge.spool import Spool
from domicile.edge.transport import IpcTransport, MqttTransport, Transport, TransportRefused, TransportUnavailable
from domicile.wire.topics import DeviceIdentity
from domicile_local.greengrass import DeployedComponent, DeploymentFailed, GreengrassCloud, LocalCore, RouterRefused
from edge_components.inference.build import build_device
from edge_components.inference.settings import EdgeSettings, load_edge_settings


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


def tear(path: Path) -> None:
    """What a power cut mid-write leaves: half the file's bytes on the disk."""
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


class PowerCutSpool(Spool):
    """A spool whose next write, once armed, is torn (`tear`) and never renamed."""

    armed = False

    def _place(self, tmp: Path, final: Path) -> None:
        if self.armed:
            self.armed = False
            tear(tmp)
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
    labels: dict[str, str] = field(default_factory=dict)  # case id -> the data's class label
    decisions: list[tuple[float, bool]] = field(default_factory=list)  # (time, escalated)
    done: bool = False
    error: str | None = None
    core: LocalCore | None = None  # the device's Greengrass core

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
                if self.device.forward.last_refusal:  # the core will refuse it again: a deployment fault
                    raise DeploymentFailed(f"the Greengrass core refused a publish: {self.device.forward.last_refusal}")
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
            self.labels[case_id] = str(self.y[i])
            self.started.setdefault(case_id, time.time())  # a resumed case keeps its first start
            self.reached = i + 1
            (decision,) = self.device.infer([case_id], features[None, :], positions=[i])
            self.decisions.append((time.time(), bool(decision["escalated"])))
            self.device.tick()
            if interval:
                time.sleep(max(0.0, begin + (i + 1) * interval - time.monotonic()))
        self.device.close()


class RouterTransport:
    """greengrasssdk `publish()` as a core runs it: the legacy subscription router, then the core's link.

    In-process, so that several devices share one interpreter; the real greengrasssdk takes the
    same path through the fake Lambda runtime in the transport contract tests.
    """

    def __init__(self, core: LocalCore, source_arn: str) -> None:
        self.core = core
        self.source_arn = source_arn

    def publish(self, topic: str, payload: bytes) -> None:
        try:
            self.core.route_lambda_publish(self.source_arn, topic, payload)
        except RouterRefused as exc:
            raise TransportRefused(f"greengrass publish to {topic} failed: {exc}") from exc

    def close(self) -> None:
        return None


def edge_component(deployed: dict[str, DeployedComponent]) -> DeployedComponent:
    """The deployed component that runs device code: a Lambda component, or one with a Run step."""
    runnable = [
        c for c in deployed.values()
        if not c.provided_by_aws and (c.component_type == "aws.greengrass.lambda" or c.lifecycle.get("Run"))
    ]  # fmt: skip
    if len(runnable) != 1:
        raise DeploymentFailed(f"the deployment runs {len(runnable)} edge components, expected one: {sorted(deployed)}")
    return runnable[0]


def component_transport(core: LocalCore, component: DeployedComponent) -> Transport:
    env = component.environment
    if component.component_type == "aws.greengrass.lambda":
        return RouterTransport(core, env["MY_FUNCTION_ARN"])
    assert core.ipc is not None  # the component's socket path may be relative to its work folder: use ours
    return IpcTransport(socket_path=core.ipc.address, auth_token=env["SVCUID"])


def _new_device(
    core: LocalCore, component: DeployedComponent, settings: EdgeSettings, may_lose_power: bool
) -> EdgeDevice:
    # A device that may lose power spools every message first (write-ahead), so it can resume its input.
    spool = (
        PowerCutSpool(settings.spool_dir, settings.spool_max_entries, settings.spool_max_bytes)
        if may_lose_power
        else None
    )
    return build_device(settings, component_transport(core, component), write_ahead=may_lose_power, spool=spool)


def _restart(make: Callable[[], EdgeDevice], broker_url: str, old: EdgeDevice, link: SwitchableLink) -> EdgeDevice:
    """The device after a power cut: the core connects again as the same thing, the component starts anew."""
    old.forward.transport.close()
    link.inner.close()
    link.inner = MqttTransport(broker_url, old.identity.device, ack_timeout_s=5)
    new = make()
    new.stats, new.forward.stats = old.stats, old.forward.stats  # the run's counters of work done
    return new


def deploy_device(
    cloud: GreengrassCloud, fleet: Fleet, thing: str, root: Path, link: SwitchableLink
) -> tuple[LocalCore, DeployedComponent]:
    """A core for `thing`, with its fleet's deployment (to the fleet's thing group) deployed as the nucleus would."""
    group = f"domicile-{fleet.name}"
    if group not in cloud.deployments:
        raise DeploymentFailed(f"fleets.{fleet.name}: the synthesized templates deploy nothing to thing group {group}")
    core = LocalCore(root / thing, thing, fleet.home_region, cloud_publish=link.publish)
    try:
        return core, edge_component(core.deploy(cloud, cloud.deployments[group]))
    except Exception:
        core.stop()
        raise


@dataclass(frozen=True)
class CaseStream:
    """What each device of a fleet sends: `records` of the fleet's cases, shuffled per device."""

    x: np.ndarray
    y: np.ndarray  # each case's class label (str)
    records: int
    rate: float  # cases per second
    seed: int
    with_drift: bool  # shift the inputs halfway through


def build_devices(
    fleet: Fleet,
    count: int,
    stream: CaseStream,
    cloud: GreengrassCloud,
    broker_url: str,
    device_root: Path,
    power_cuts: int = 0,
) -> list[DeviceRun]:
    """A fleet's devices; with `power_cuts`, its first device loses power that many times mid-spool-write."""
    x, y, records, seed = stream.x, stream.y, stream.records, stream.seed
    runs = []
    for i in range(count):
        thing = f"{fleet.name}-{i}"
        order = np.random.default_rng([seed, i, len(fleet.name)]).permutation(len(x))
        order = np.resize(order, records)  # each device: its own shuffled stream of held-out rows
        link = SwitchableLink(MqttTransport(broker_url, thing, ack_timeout_s=5))
        core, component = deploy_device(cloud, fleet, thing, device_root, link)
        settings = load_edge_settings(component.environment)
        identity = DeviceIdentity(thing, settings.fleet, settings.jurisdiction, settings.home_region)
        cuts = power_cuts if i == 0 else 0
        make = partial(_new_device, core, component, settings, cuts > 0)
        cut_at = [records * (k + 1) // (cuts + 1) for k in range(cuts)]  # spread over the stream
        restart = partial(_restart, make, broker_url, link=link)
        runs.append(DeviceRun(identity, fleet, make(), link, x[order], y[order], stream.rate,
                              records // 2 if stream.with_drift else None, restart, cut_at, core=core))  # fmt: skip
    return runs
