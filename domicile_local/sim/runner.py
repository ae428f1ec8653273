"""The local run: stand up moto and the brokers, wire the templates' event sources and rules, run the devices.

The pieces live beside it: `event_sources` (Lambda's SQS poller), `rules_engine` (IoT Core's rules),
`faults` (what `--fault` injects), `devices` (a local Greengrass core per device), `synth`.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from domicile.aws.stores import AGGREGATE_HANDLER
from domicile.config.topology import FleetMode, Topology
from domicile.errors import ConfigError
from domicile.wire.topics import ROOT, topic_filter
from domicile_local.greengrass import GreengrassCloud
from domicile_local.sim.assembly import (
    Function,
    StackView,
    create_resources,
    function_arn,
    functions_of,
    load_stacks,
)
from domicile_local.sim.devices import CaseStream, DeviceRun, build_devices
from domicile_local.sim.event_sources import Delivery, InFlight, SourceQueue, SqsPoller, queue_url
from domicile_local.sim.faults import CpuStarve, FaultInjector, Faults
from domicile_local.sim.rules import LocalRule, rules_of
from domicile_local.sim.rules_engine import RulesEngine
from domicile_local.sim.services import Services, start_amqtt, start_moto
from domicile_local.sim.workers import LambdaFunction, WorkerFaults

QUIET_S = 1.5  # drained: nothing in flight and every source queue empty for this long


@dataclass
class SimOptions:
    records: int = 300  # per device
    devices: int | None = None  # per fleet (default: the topology's count)
    rate: float = 60.0  # cases per second per device
    seed: int = 7
    drift: bool = False
    offline: dict[str, float] = field(default_factory=dict)  # fleet -> seconds of cut link
    inject_violations: int = 0
    out: Path | None = None
    brokers: dict[str, str] = field(default_factory=dict)  # region -> mqtt:// URL
    progress: bool = True
    drain_timeout_s: float = 90.0
    faults: Faults = field(default_factory=Faults)
    cdk_out: Path | None = None  # an app synthesized beforehand; None synthesizes the project (cdk.json)
    data: dict[str, Path] = field(default_factory=dict)  # fleet -> DATA.npz (x, y) its devices send
    # None: every queue's visibility timeout and every function's timeout as the templates say. A run that
    # wants failed records back quickly (the fault tests) shortens the queues' to this, and the functions'
    # to a sixth of it (the ratio AWS recommends for a queue's consumer).
    visibility_timeout_s: float | None = None
    # Execution environments per function: as many as concurrent invocations need, up to the template's
    # reserved concurrency and to this cap. 1 by default: on a 2-core machine a second environment per
    # function made the run slower (BENCHMARKS.md, "Execution environments"); None: no local cap.
    environments: int | None = 1


@dataclass(frozen=True)
class DrainState:
    """What the drain shows while it waits: cases aggregated of those published, and work in flight."""

    aggregated: int
    published: int
    in_flight: int  # batches being invoked, rule messages queued, messages in the source queues


@dataclass
class Completion:
    at: float
    label: str
    source: str
    escalated: bool


@dataclass
class Ledger:
    """What reached aggregation, per (device, case); first delivery wins, duplicates are counted."""

    completions: dict[tuple[str, str], Completion] = field(default_factory=dict)
    duplicate_cases: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: str) -> None:
        try:
            envelope = json.loads(body)
            payload = envelope["payload"]
            device = envelope["device"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return
        now = time.time()
        with self.lock:
            for case_id, label in zip(payload.get("case_ids", []), payload.get("labels", []), strict=False):
                key = (device, case_id)
                if key in self.completions:
                    self.duplicate_cases += 1
                    continue
                self.completions[key] = Completion(
                    now, label, payload.get("source", ""), bool(payload.get("escalated"))
                )


class Simulation:
    def __init__(self, topology: Topology, options: SimOptions, cdk_out: Path, out: Path) -> None:
        import boto3

        self.topology = topology
        self.options = options
        self.cdk_out = cdk_out
        self.out = out
        self.log_dir = out / "logs"
        shutil.rmtree(self.log_dir, ignore_errors=True)  # the report reads these logs: only this run's
        shutil.rmtree(out / "devices", ignore_errors=True)  # a reused folder's devices must not resume an old run
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.stop_event = threading.Event()  # the whole pipeline
        self.devices_stop = threading.Event()  # the devices only (Ctrl-C: stop them, drain the rest)
        self.ledger = Ledger()
        self.secret_key = f"sim-secret-{uuid.uuid4().hex}"  # per run, so a log that leaks it can be found
        self.session = boto3.session.Session(aws_access_key_id="simulation", aws_secret_access_key=self.secret_key)
        self.stacks: list[StackView] = load_stacks(cdk_out)
        # What the templates create in Greengrass: each device's local core deploys from it.
        self.greengrass = GreengrassCloud(cdk_out)
        for stack in self.stacks:
            self.greengrass.add_stack(stack)
        self.services = Services()
        for region in sorted({s.region for s in self.stacks}):
            self.services.aws[region] = start_moto(region, self.log_dir)
        self.workers: dict[str, LambdaFunction] = {}  # by function ARN
        self.rules_engines: list[RulesEngine] = []  # one per region with rules
        self.pollers: dict[str, list[SqsPoller]] = {}  # by the function they feed (stack/logical id)
        self.threads: list[threading.Thread] = []
        self.delivery = Delivery(InFlight(), FaultInjector(options.faults, options.seed))
        self.injected = 0
        self.injected_cases: list[str] = []  # "device/case" of each violation sent on an honest device's topic
        self.devices: list[DeviceRun] = []
        self.starve = CpuStarve() if options.faults.cpu_starve else None

    # -- AWS clients against moto -------------------------------------------------------------------
    def client(self, service: str, region: str) -> Any:
        endpoint = self.services.aws[region].url
        return self.session.client(service, region_name=region, endpoint_url=endpoint)  # type: ignore[call-overload]

    # -- set-up ----------------------------------------------------------------------------------------
    def setup(self) -> None:
        regions = sorted({s.region for s in self.stacks})
        for region in regions:
            url = self.options.brokers.get(region)
            if url:
                from domicile_local.sim.services import Service

                self.services.brokers[region] = Service(f"broker:{region}", url)
            else:
                self.services.brokers[region] = start_amqtt(region, self.log_dir)
        functions: list[Function] = []
        for stack in self.stacks:
            create_resources(stack, _EndpointSession(self), self.options.visibility_timeout_s)
            functions += functions_of(stack, self.cdk_out).values()
        if self.options.visibility_timeout_s is not None:
            functions = [replace(fn, timeout_s=self.options.visibility_timeout_s / 6) for fn in functions]
        if not functions:
            raise ConfigError(f"{self.cdk_out}: no function with a bundled asset to run (asset metadata missing?)")
        faults = self.options.faults
        aggregate_faults = WorkerFaults(faults.write_error_every, faults.aggregate_crashes)
        for fn in functions:
            arn = next(s.physical[fn.logical_id]["Arn"] for s in self.stacks if s.name == fn.stack)
            self.workers[arn] = LambdaFunction(
                fn, self.services.aws[fn.region].url, self.log_dir,
                aggregate_faults if fn.handler == AGGREGATE_HANDLER else None, self.secret_key,
                self.options.environments,
            )  # fmt: skip
        for worker in self.workers.values():
            worker.wait_ready()
        for stack in self.stacks:
            self._wire_event_sources(stack)
            self._wire_rules(stack, rules_of(stack))

    def _wire_event_sources(self, stack: StackView) -> None:
        aws_url = self.services.aws[stack.region].url
        for resource in stack.resources("AWS::Lambda::EventSourceMapping").values():
            props = stack.resolve(resource["Properties"])
            worker = self.workers.get(function_arn(str(props["FunctionName"]), stack.region))
            if worker is None:
                continue
            is_aggregate = worker.function.handler == AGGREGATE_HANDLER
            source = SourceQueue(queue_url(props["EventSourceArn"], aws_url), props["EventSourceArn"], stack.region)
            # Lambda polls with as many concurrent batches as the mapping's maximum concurrency allows (and
            # its function can run); without one, this run keeps to the function's own concurrency.
            batches = int(props.get("ScalingConfig", {}).get("MaximumConcurrency", worker.limit))
            for i in range(max(1, min(batches, worker.limit))):
                poller = SqsPoller(
                    self.client("sqs", stack.region), source, int(props.get("BatchSize", 10)), worker,
                    delivery=self.delivery, on_delivered=self.ledger.record if is_aggregate else None,
                    window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                )  # fmt: skip
                self.pollers.setdefault(worker.function.key, []).append(poller)
                thread = threading.Thread(target=poller.run, args=(self.stop_event,), daemon=True,
                                          name=f"esm:{worker.function.key}:{i}")  # fmt: skip
                thread.start()
                self.threads.append(thread)

    def _wire_rules(self, stack: StackView, rules: list[LocalRule]) -> None:
        """The region's rules engine: a subscriber on its broker, feeding its dispatchers."""
        if not rules:
            return
        engine = RulesEngine(
            stack, rules, broker_url=self.services.brokers[stack.region].url,
            aws_url=self.services.aws[stack.region].url, sqs=self.client("sqs", stack.region), workers=self.workers,
            delivery=self.delivery,
        )  # fmt: skip
        engine.start(self.stop_event)
        self.rules_engines.append(engine)
        self.threads += engine.threads

    @property
    def rule_stats(self) -> dict[str, dict[str, float]]:
        return {name: stats for engine in self.rules_engines for name, stats in engine.stats.items()}

    @property
    def fault_counts(self) -> dict[str, int]:
        return self.delivery.injector.counts

    @property
    def busy(self) -> int:
        return self.delivery.inflight.count

    # -- the run ---------------------------------------------------------------------------------------
    def run(
        self, on_tick: Callable[[dict[str, int]], None] | None = None,
        on_drain: Callable[[DrainState], None] | None = None,
    ) -> bool:  # fmt: skip
        """Devices and injected violations, then drain; True when the pipeline drained in time."""
        if self.starve is not None:
            self.starve.start()
        try:
            self.start_devices()
            self.inject_violations()
            while not all(run.done for run in self.devices):
                if on_tick:
                    on_tick(self.cases_started())
                time.sleep(0.2)
            if on_tick:
                on_tick(self.cases_started())
            return self.drain(on_drain)
        finally:
            if self.starve is not None:
                self.fault_counts["cpu_starve_processes"] = self.starve.running
                self.starve.stop()

    def cases_started(self) -> dict[str, int]:
        counts = dict.fromkeys(self.topology.fleets, 0)
        for run in self.devices:
            counts[run.fleet.name] += len(run.started)
        return counts

    def start_devices(self) -> None:
        from domicile.config.project import registry_dir
        from domicile.models.registry import load_manifest
        from domicile_local.sim.data import fleet_cases

        self._check_split_rules()
        model_dir = registry_dir()
        cases = fleet_cases(self.topology, load_manifest(model_dir), model_dir, self.options.data, self.options.seed)
        for fleet in self.topology.fleets.values():
            data = cases[fleet.name]
            stream = CaseStream(data.x, data.labels, self.options.records, self.options.rate, self.options.seed,
                                self.options.drift)  # fmt: skip
            count = self.options.devices or fleet.devices
            self.devices += build_devices(
                fleet, count, stream, self.greengrass, self.services.brokers[fleet.home_region].url,
                self.out / "devices", self.options.faults.power_cuts,
            )  # fmt: skip
        for run in self.devices:
            offline = self.options.offline.get(run.fleet.name)
            # the cut starts a third of the way into the stream
            window = (self.options.records / max(run.rate, 1e-9) / 3, offline) if offline else None
            thread = threading.Thread(target=run.run, args=(self.devices_stop, window), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _check_split_rules(self) -> None:
        """Split fleets need the templates' rule for their split topic (the tail runs behind it)."""
        for fleet in self.topology.fleets.values():
            if fleet.mode is not FleetMode.SPLIT:
                continue
            stack = next(s for s in self.stacks if s.region == fleet.home_region)
            split_topic = topic_filter(fleet.jurisdiction, "split")
            own = f"{ROOT}/{fleet.jurisdiction}/{fleet.name}/+/split"  # a fleet's own rule (fleets on both paths)
            if not any(rule.query.topic_filter in (split_topic, own) for rule in rules_of(stack)):
                raise ConfigError(
                    f"fleets.{fleet.name}.mode: the synthesized {stack.name} has no rule for {split_topic}; "
                    "set mode = 'split' in the topology and synthesize again"
                )

    def inject_violations(self) -> None:
        """Messages that claim another jurisdiction, sent on an honest device's topic: all must be quarantined."""
        if not self.options.inject_violations or not self.devices:
            return
        from domicile.edge.transport import MqttTransport
        from domicile.wire.envelope import EscalateEnvelope, EscalatePayload

        others = {j: self.topology.regions_of(j)[0] for j in self.topology.jurisdictions}
        for i in range(self.options.inject_violations):
            victim = self.devices[i % len(self.devices)]
            foreign = next(j for j in others if j != victim.identity.jurisdiction)
            envelope = EscalateEnvelope(
                device=victim.identity.device, fleet=victim.identity.fleet, jurisdiction=foreign,
                home_region=others[foreign], model=victim.device.model_ref,
                payload=EscalatePayload(case_id=f"violation-{i}", features=[0] * 64, edge=None),
            )  # fmt: skip
            transport = MqttTransport(self.services.brokers[victim.identity.home_region].url, f"intruder-{i}")
            transport.publish(victim.identity.topic("escalate"), envelope.model_dump_json(exclude_none=True).encode())
            transport.close()
            self.injected += 1
            self.injected_cases.append(f"{victim.identity.device}/violation-{i}")

    def published(self) -> int:
        return sum(len(run.started) for run in self.devices) + self.injected

    def queued(self) -> int:
        """Messages in the source queues (visible or in flight); DLQs are allowed to hold messages."""
        total = 0
        for stack in self.stacks:
            sqs = self.client("sqs", stack.region)
            for lid, resource in stack.resources("AWS::SQS::Queue").items():
                if "RedrivePolicy" not in resource.get("Properties", {}):
                    continue
                attrs = sqs.get_queue_attributes(
                    QueueUrl=stack.physical[lid]["Ref"],
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                total += int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
        return total

    def drain(self, on_drain: Callable[[DrainState], None] | None = None) -> bool:
        """Wait for the pipeline to go idle; give up after `drain_timeout_s` without progress (or 10 minutes).

        Progress (another aggregated envelope) restarts the clock, so a slow or busy machine drains late
        rather than being reported as stuck.
        """
        hard_stop = time.monotonic() + 600
        deadline = time.monotonic() + self.options.drain_timeout_s
        done = len(self.ledger.completions)
        quiet_since = None
        while time.monotonic() < min(deadline, hard_stop):
            if len(self.ledger.completions) != done:
                done = len(self.ledger.completions)
                deadline = time.monotonic() + self.options.drain_timeout_s
            queued = self.queued()
            if on_drain:
                on_drain(DrainState(done, self.published(), self.busy + queued))
            idle = self.busy == 0 and queued == 0
            if idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > QUIET_S:
                    return True
            else:
                quiet_since = None
            time.sleep(0.25)
        return False

    def stop(self) -> None:
        if self.starve is not None:
            self.starve.stop()
        self.devices_stop.set()
        self.stop_event.set()
        # Let pollers finish the invocation in hand before their workers go (a run stopped undrained).
        deadline = time.monotonic() + 5
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for engine in self.rules_engines:
            engine.stop()
        for run in self.devices:
            run.device.forward.transport.close()
            run.link.close()
            if run.core is not None:
                run.core.stop()
        for worker in self.workers.values():
            worker.stop()
        self.services.stop()


class _EndpointSession:
    """A boto3-session-like object whose clients talk to moto."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def client(self, service: str, region_name: str) -> Any:
        return self.sim.client(service, region_name)
