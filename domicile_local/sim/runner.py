"""The local run: synthesize, stand up moto and the brokers, wire rules and event sources, run devices."""

from __future__ import annotations

import json
import queue
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domicile.config.topology import FleetMode, Topology
from domicile.errors import ConfigError
from domicile.wire.topics import topic_filter
from domicile_local.greengrass import GreengrassCloud
from domicile_local.sim.assembly import (
    ACCOUNT,
    Function,
    StackView,
    create_resources,
    function_arn,
    functions_of,
    load_stacks,
)
from domicile_local.sim.devices import CaseStream, DeviceRun, build_devices
from domicile_local.sim.rules import LocalRule, rules_of, run_rule
from domicile_local.sim.services import Services, start_amqtt, start_moto
from domicile_local.sim.workers import LambdaWorker, WorkerFaults

AGGREGATE_HANDLER = "functions.aggregate.handler.handler"
RuleWork = queue.Queue[tuple[LocalRule, str, bytes]]  # (rule, topic, payload) matched, waiting for its actions
HOLD_BACK_P = 0.3  # --fault reorder: the chance a batch keeps its second half back a round
QUIET_S = 1.5  # drained: nothing in flight and every source queue empty for this long


@dataclass(frozen=True)
class Faults:
    """What `--fault` injects into the local run; the books must balance all the same."""

    write_error_every: int = 0  # one envelope in N: its first aggregate transaction fails (then its retry works)
    aggregate_crashes: int = 0  # the aggregate function dies after writing half a batch, this many times
    duplicate_every: int = 0  # every Nth queue message and rule message is delivered twice
    reorder: bool = False  # queue batches are delivered shuffled, some messages held back a round
    power_cuts: int = 0  # each fleet's first device loses power this many times, mid-spool-write

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


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
        self.workers: dict[str, LambdaWorker] = {}  # by function ARN
        self.rule_stats: dict[str, dict[str, float]] = {}
        self.rule_clients: list[Any] = []  # the rules runner's MQTT clients, one per region
        self.threads: list[threading.Thread] = []
        self.busy = 0
        self.busy_lock = threading.Lock()
        self.injected = 0
        self.devices: list[DeviceRun] = []
        self.fault_counts: dict[str, int] = {"duplicates_delivered": 0, "held_back": 0}
        self._fault_lock = threading.Lock()
        self._rng = random.Random(options.seed)

    # -- AWS clients against moto -------------------------------------------------------------------
    def client(self, service: str, region: str) -> Any:
        endpoint = self.services.aws[region].url
        return self.session.client(service, region_name=region, endpoint_url=endpoint)  # type: ignore[call-overload]

    def _busy(self, delta: int) -> None:
        with self.busy_lock:
            self.busy += delta

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
            create_resources(stack, _EndpointSession(self))
            functions += functions_of(stack, self.cdk_out).values()
        if not functions:
            raise ConfigError(f"{self.cdk_out}: no function with a bundled asset to run (asset metadata missing?)")
        faults = self.options.faults
        aggregate_faults = WorkerFaults(faults.write_error_every, faults.aggregate_crashes)
        for fn in functions:
            arn = next(s.physical[fn.logical_id]["Arn"] for s in self.stacks if s.name == fn.stack)
            self.workers[arn] = LambdaWorker(
                fn, self.services.aws[fn.region].url, self.log_dir,
                aggregate_faults if fn.handler == AGGREGATE_HANDLER else None, self.secret_key,
            )  # fmt: skip
        for worker in self.workers.values():
            worker.wait_ready()
        for stack in self.stacks:
            self._wire_event_sources(stack)
            self._wire_rules(stack, rules_of(stack))

    def _wire_event_sources(self, stack: StackView) -> None:
        for resource in stack.resources("AWS::Lambda::EventSourceMapping").values():
            props = stack.resolve(resource["Properties"])
            arn = function_arn(str(props["FunctionName"]), stack.region)
            worker = self.workers.get(arn)
            if worker is None:
                continue
            queue_url = self._queue_url(props["EventSourceArn"], stack)
            batch = int(props.get("BatchSize", 10))
            poller = threading.Thread(
                target=self._poll, args=(stack, queue_url, props["EventSourceArn"], batch, worker),
                daemon=True, name=f"esm:{worker.function.key}",
            )  # fmt: skip
            poller.start()
            self.threads.append(poller)

    def _queue_url(self, arn: str, stack: StackView) -> str:
        name = arn.rsplit(":", 1)[-1]
        return f"{self.services.aws[stack.region].url}/{ACCOUNT}/{name}" if not name.startswith("http") else name

    def _poll(self, stack: StackView, queue_url: str, queue_arn: str, batch_size: int, worker: LambdaWorker) -> None:
        sqs = self.client("sqs", stack.region)
        is_aggregate = worker.function.handler == AGGREGATE_HANDLER
        held: list[dict[str, Any]] = []  # held back from the last batch (--fault reorder)
        while not self.stop_event.is_set():
            messages: list[dict[str, Any]] = []
            while len(messages) < batch_size:
                got = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=min(10, batch_size - len(messages)),
                    AttributeNames=["All"], MessageAttributeNames=["All"],
                ).get("Messages", [])  # fmt: skip
                if not got:
                    break
                messages += got
            if not messages and not held:
                time.sleep(0.05)
                continue
            self._busy(+1)
            try:
                messages = self._disorder(sqs, queue_url, messages, held)
                if not messages:
                    continue
                records = [_sqs_record(m, queue_arn, stack.region) for m in messages]
                ok, result = worker.invoke({"Records": records})
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])} if ok else None
                done = [m for m in messages if failed is not None and m["MessageId"] not in failed]
                for start in range(0, len(done), 10):
                    entries = [
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ]
                    sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
                if is_aggregate:
                    for message in done:
                        self.ledger.record(message["Body"])
            finally:
                self._busy(-1)

    def _duplicate_now(self) -> bool:
        """Every Nth message (queue or rule) is delivered twice, as at-least-once delivery may."""
        every = self.options.faults.duplicate_every
        if not every:
            return False
        with self._fault_lock:
            self.fault_counts["seen"] = self.fault_counts.get("seen", 0) + 1
            if self.fault_counts["seen"] % every:
                return False
            self.fault_counts["duplicates_delivered"] += 1
            return True

    def _disorder(
        self, sqs: Any, queue_url: str, messages: list[dict[str, Any]], held: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Standard queues promise neither order nor a single delivery: shuffle, hold back, send again.

        Held-back messages stay in flight (received once) and go with the poller's next batch, so they
        arrive after messages sent later; a message is held back at most once.
        """
        faults = self.options.faults
        if faults.reorder:
            late, held[:] = list(held), []
            with self._fault_lock:
                self._rng.shuffle(messages)
                if len(messages) > 1 and self._rng.random() < HOLD_BACK_P:
                    held[:] = messages[len(messages) // 2 :]
                    self.fault_counts["held_back"] += len(held)
            messages = messages[: len(messages) - len(held)] + late
        for message in messages:
            if self._duplicate_now():
                sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
        return messages

    def _wire_rules(self, stack: StackView, rules: list[LocalRule]) -> None:
        """The region's rules engine: a subscriber on its broker, feeding two dispatcher threads."""
        if not rules:
            return
        work: RuleWork = queue.Queue()
        self._start_dispatchers(stack, work)
        self._subscribe_rules(stack, rules, work)

    def _start_dispatchers(self, stack: StackView, work: RuleWork) -> None:
        """Threads that run each matched message through its rule's actions, as IoT Core's rules engine does."""
        sqs = self.client("sqs", stack.region)
        invoke_configs = self._invoke_configs(stack)

        def send_sqs(url: str, body: str) -> None:
            sqs.send_message(QueueUrl=self._queue_url(url.rsplit("/", 1)[-1], stack), MessageBody=body)

        def invoke_async(target: str, event: Any) -> None:
            arn = function_arn(target, stack.region)  # an alias runs its function's code
            worker = self.workers.get(arn)
            if worker is None:
                raise RuntimeError(f"no function {arn}")
            threading.Thread(target=self._async_invoke, args=(worker, event, invoke_configs.get(arn), sqs, stack),
                             daemon=True).start()  # fmt: skip

        def dispatch() -> None:
            while not self.stop_event.is_set():
                try:
                    rule, topic, raw = work.get(timeout=0.2)
                except queue.Empty:
                    continue
                started = time.perf_counter()
                try:
                    outcome = run_rule(rule, topic, raw, send_sqs, invoke_async)
                except Exception:
                    outcome = "failed"
                stats = self.rule_stats.setdefault(rule.name, {"messages": 0, "seconds": 0.0})
                stats["messages"] += 1
                stats["seconds"] += time.perf_counter() - started
                stats[outcome] = stats.get(outcome, 0) + 1
                self._busy(-1)

        for _ in range(2):
            thread = threading.Thread(target=dispatch, daemon=True, name=f"rules:{stack.region}")
            thread.start()
            self.threads.append(thread)

    def _subscribe_rules(self, stack: StackView, rules: list[LocalRule], work: RuleWork) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from domicile.edge.transport import MqttEndpoint

        endpoint = MqttEndpoint.parse(self.services.brokers[stack.region].url)
        # A persistent session: across a broker restart (with persistence) the messages queued for the
        # rules engine are still delivered, as IoT Core's rules engine never misses a message.
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"iot-rules-{stack.region}-{uuid.uuid4().hex[:6]}",
            clean_session=False,
        )  # fmt: skip
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        subscribed = threading.Event()

        def on_connect(c: Any, *_: Any) -> None:
            for rule in rules:
                c.subscribe(rule.query.topic_filter, qos=1)

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            copies = 2 if self._duplicate_now() else 1
            for rule in rules:
                if mqtt.topic_matches_sub(rule.query.topic_filter, message.topic):
                    for _ in range(copies):
                        self._busy(+1)
                        work.put((rule, message.topic, message.payload))

        client.on_connect = on_connect
        client.on_subscribe = lambda *a, **k: subscribed.set()
        client.on_message = on_message
        client.connect(endpoint.host, endpoint.port)
        client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError(f"the rules runner could not subscribe on {stack.region}'s broker")
        self.rule_clients.append(client)

    def _invoke_configs(self, stack: StackView) -> dict[str, dict[str, Any]]:
        """Async invoke settings by function ARN (set on the alias or the function: the same code runs)."""
        configs = {}
        for resource in stack.resources("AWS::Lambda::EventInvokeConfig").values():
            props = stack.resolve(resource["Properties"])
            arn = f"arn:aws:lambda:{stack.region}:{ACCOUNT}:function:{props['FunctionName']}"
            configs[arn] = props
        return configs

    def _async_invoke(self, worker: LambdaWorker, event: Any, config: dict[str, Any] | None, sqs: Any,
                      stack: StackView) -> None:  # fmt: skip
        """Lambda's async invoke: retries, then the on-failure destination with the failure record."""
        self._busy(+1)
        try:
            retries = int((config or {}).get("MaximumRetryAttempts", 2))
            error = ""
            for _ in range(retries + 1):
                ok, result = worker.invoke(event)
                if ok:
                    return
                error = str(result)
            destination = ((config or {}).get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
            if destination:
                record = {
                    "version": "1.0", "timestamp": datetime.now(UTC).isoformat(),
                    "requestContext": {"functionArn": worker.function.name, "condition": "RetriesExhausted",
                                       "approximateInvokeCount": retries + 1},
                    "requestPayload": event, "responseContext": {"functionError": "Unhandled"},
                    "responsePayload": {"errorMessage": error},
                }  # fmt: skip
                sqs.send_message(QueueUrl=self._queue_url(destination, stack), MessageBody=json.dumps(record))
        finally:
            self._busy(-1)

    # -- the run ---------------------------------------------------------------------------------------
    def run(self, on_tick: Callable[[dict[str, int]], None] | None = None) -> bool:
        """Devices and injected violations, then drain; True when the pipeline drained in time."""
        self.start_devices()
        self.inject_violations()
        while not all(run.done for run in self.devices):
            if on_tick:
                on_tick(self.cases_started())
            time.sleep(0.2)
        if on_tick:
            on_tick(self.cases_started())
        return self.drain()

    def cases_started(self) -> dict[str, int]:
        counts = dict.fromkeys(self.topology.fleets, 0)
        for run in self.devices:
            counts[run.fleet.name] += len(run.started)
        return counts

    def start_devices(self) -> None:
        from domicile.models.datasets import load_digits_splits

        test = load_digits_splits(self.options.seed).test
        self._check_split_rules()
        stream = CaseStream(test.x, test.y, self.options.records, self.options.rate, self.options.seed,
                            self.options.drift)  # fmt: skip
        for fleet in self.topology.fleets.values():
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
            if not any(rule.query.topic_filter == split_topic for rule in rules_of(stack)):
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

    def source_queues_empty(self) -> bool:
        for stack in self.stacks:
            sqs = self.client("sqs", stack.region)
            for lid, resource in stack.resources("AWS::SQS::Queue").items():
                if "RedrivePolicy" not in resource.get("Properties", {}):
                    continue  # DLQs are allowed to hold messages
                attrs = sqs.get_queue_attributes(
                    QueueUrl=stack.physical[lid]["Ref"],
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                if int(attrs["ApproximateNumberOfMessages"]) or int(attrs["ApproximateNumberOfMessagesNotVisible"]):
                    return False
        return True

    def drain(self) -> bool:
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
            idle = self.busy == 0 and self.source_queues_empty()
            if idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > QUIET_S:
                    return True
            else:
                quiet_since = None
            time.sleep(0.25)
        return False

    def stop(self) -> None:
        self.devices_stop.set()
        self.stop_event.set()
        # Let pollers finish the invocation in hand before their workers go (a run stopped undrained).
        deadline = time.monotonic() + 5
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for client in self.rule_clients:
            client.disconnect()
            client.loop_stop()
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


def _sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A record in the shape Lambda's SQS event source delivers."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def synthesize(topology: Topology, out: Path, project: Path | None = None) -> Path:
    """The project's CDK app, run as `cdk synth` runs it, into the run's folder (refused if residency fails).

    The `app` command of the project's cdk.json gets `CDK_OUTDIR` as from the CDK CLI, and the topology
    (with any command-line overrides) as a file through `DOMICILE_TOPOLOGY`.
    """
    import json
    import os
    import subprocess

    project = project or Path.cwd()
    cdk_json = project / "cdk.json"
    if not cdk_json.is_file():
        raise ConfigError(f"{project}: no cdk.json to synthesize; run in the project folder or pass --cdk-out")
    app = json.loads(cdk_json.read_text()).get("app")
    if not app:
        raise ConfigError(f"{cdk_json}: no `app` command")
    topology_path = out / "topology.json"
    topology_path.write_text(topology.model_dump_json(indent=2))
    cdk_out = out / "cdk.out"
    env = {**os.environ, "CDK_OUTDIR": str(cdk_out), "DOMICILE_TOPOLOGY": str(topology_path)}
    done = subprocess.run(app, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise ConfigError("synth failed:\n" + (done.stderr.strip() or done.stdout.strip())[-4000:])
    return cdk_out
