"""The report's numbers, gathered from a finished run: stores read directly, logs, device counters."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from domicile.aws.stores import RegionStores, read_region, stores_of_template
from domicile.cloud.books import Books, Outcome, StoreContents, cases_in_text, fleet_counts, reconcile
from domicile_local.sim.faults import Faults
from domicile_local.sim.report.model import (
    FaultCounts,
    FleetDrift,
    FleetReport,
    HandlerStage,
    Report,
    RuleStage,
    Stages,
)
from domicile_local.sim.runner import Simulation

_EMF_METRICS = ("DuplicatesSuppressed", "ResidencyViolation", "BadInput", "EnvelopesAggregated", "Escalations")


def _log_records(log_dir: Path) -> list[dict[str, Any]]:
    """The JSON lines the Lambda workers wrote (Powertools logs and EMF blobs)."""
    records = []
    for log in log_dir.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return records


def _emf_totals(records: list[dict[str, Any]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for record in records:
        if "_aws" not in record:
            continue
        for name in _EMF_METRICS:
            values = record.get(name)
            if values is not None:
                totals[name] += int(sum(values) if isinstance(values, list) else values)
    return totals


def _emf_value(value: Any) -> float:
    """An EMF metric value: a number, or a list of them (Powertools writes lists)."""
    return float(max(value)) if isinstance(value, list) else float(value)


def _duplicates_by_fleet(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(r.get("fleet")) for r in records if r.get("message") == "duplicate envelope suppressed")


def region_stores(sim: Simulation) -> list[RegionStores]:
    """Each region's stores as the run created them, found as `domicile books` finds a deployment's."""
    found = []
    for stack in sim.stacks:
        physical = {lid: ids["Ref"] for lid, ids in stack.physical.items() if "Ref" in ids}
        stores = stores_of_template(stack.template, stack.region, physical)
        if stores is not None:
            found.append(stores)
    return found


def read_stores(sim: Simulation) -> StoreContents:
    contents = StoreContents()
    for stores in region_stores(sim):
        region = stores.region
        contents = contents.merge(
            read_region(stores, sim.client("dynamodb", region), sim.client("s3", region), sim.client("sqs", region))
        )
    return contents


def _fault_counts(sim: Simulation, logs: list[dict[str, Any]]) -> dict[str, int]:
    """What `--fault` injected, as the workers logged it and the runner counted it."""
    counts = {"write_errors": sum(1 for r in logs if r.get("fault") == "write-error"),
              "crashes": sum(w.crashes for w in sim.workers.values())}  # fmt: skip
    return {**counts, "duplicates_delivered": sim.fault_counts["duplicates_delivered"],
            "held_back": sim.fault_counts["held_back"],
            "device_kills": sum(run.restarts for run in sim.devices),
            "torn_spool_writes": sum(run.torn_writes for run in sim.devices),
            "cases_resumed": sum(run.resumed for run in sim.devices),
            "cpu_starve_processes": sim.fault_counts.get("cpu_starve_processes", 0)}  # fmt: skip


def _still_on_devices(sim: Simulation) -> list[str]:
    """Cases in the devices' spools (a run cut short): not lost, just not sent yet."""
    cases = []
    for run in sim.devices:
        for entry in run.device.forward.spool.pending():
            cases += [c for _, c in cases_in_text(entry.payload, f"{run.identity.device}/spool-{entry.seq}")]
    return cases


def _raw_offload_bytes(run: Any) -> int:
    """What the same cases would cost as raw offload: the device's own escalate envelope for each."""
    total = 0
    for i in range(len(run.started)):
        envelope = run.device.escalation_envelope(f"{run.identity.device}-{i}", run.features(i), None)
        total += len(envelope.model_dump_json(exclude_none=True))
    return total


def _case_latencies(sim: Simulation) -> dict[tuple[str, str], float]:
    """Each aggregated case's latency, device to aggregate written (ms), by (device, case id)."""
    started = {(r.identity.device, c): t for r in sim.devices for c, t in r.started.items()}
    return {k: (c.at - started[k]) * 1000 for k, c in sim.ledger.completions.items() if k in started}


def _fleet(name: str, sim: Simulation, case_ms: dict[tuple[str, str], float], outcomes: Counter[Outcome],
           duplicates: Counter[str]) -> FleetReport:  # fmt: skip
    runs = [r for r in sim.devices if r.fleet.name == name]
    fleet = runs[0].fleet
    started = [(r.identity.device, c) for r in runs for c in r.started]
    labels = {(r.identity.device, c): lbl for r in runs for c, lbl in r.labels.items()}
    done = [k for k in started if k in case_ms]
    latencies = np.array([case_ms[k] for k in done]) if done else np.array([0.0])
    correct = sum(sim.ledger.completions[k].label == str(labels[k]) for k in done)
    sent = sum(r.device.stats.bytes_sent for r in runs)
    raw = sum(_raw_offload_bytes(r) for r in runs)
    return FleetReport(
        fleet=name, region=fleet.home_region, jurisdiction=fleet.jurisdiction, mode=runs[0].device.mode.value,
        devices=len(runs), cases=len(started), inferences=sum(r.device.stats.inferences for r in runs),
        edge_answered=sum(r.device.stats.kept for r in runs), escalated=sum(r.device.stats.escalated for r in runs),
        split=sum(r.device.stats.split for r in runs), aggregated=outcomes[Outcome.AGGREGATED],
        accuracy=correct / len(done) if done else None,
        bytes_sent=sent, bytes_raw_offload=raw, bytes_vs_raw=sent / raw if raw else None,
        latency_ms={q: float(np.percentile(latencies, q)) for q in (50, 95, 99)},
        spooled=sum(r.device.forward.stats.spooled for r in runs),
        replayed=sum(r.device.forward.stats.replayed for r in runs),
        evicted=sum(r.device.forward.evicted for r in runs),
        quarantined=outcomes[Outcome.QUARANTINED], dlq=outcomes[Outcome.IN_DLQ],
        duplicates_suppressed=duplicates.get(name, 0), device_errors=[r.error for r in runs if r.error],
    )  # fmt: skip


def _books(sim: Simulation, stores: StoreContents) -> Books:
    published = [f"{r.identity.device}/{c}" for r in sim.devices for c in r.started]
    return reconcile(stores, published, _still_on_devices(sim), sim.injected_cases)


def _stages(sim: Simulation) -> Stages:
    return Stages(
        rules={name: RuleStage(messages=int(s["messages"]), mean_ms=s["seconds"] / s["messages"] * 1000)
               for name, s in sim.rule_stats.items() if s["messages"]},
        handlers={w.function.key: HandlerStage(invocations=w.stats.invocations, errors=w.stats.errors,
                                               mean_ms=w.stats.seconds / w.stats.invocations * 1000,
                                               aws_calls=dict(sorted(w.stats.calls.items())),
                                               environments=w.environments)
                  for w in sim.workers.values() if w.stats.invocations},
        event_sources={key: dict(sorted(sum((p.calls for p in pollers), Counter()).items()))
                       for key, pollers in sim.pollers.items() if any(p.calls for p in pollers)},
    )  # fmt: skip


def _calls_per_1000(sim: Simulation, aggregated: int) -> float | None:
    calls = sum(sum(w.stats.calls.values()) for w in sim.workers.values())
    return round(calls / aggregated * 1000, 1) if aggregated else None


def _latencies_by_region(sim: Simulation, case_ms: dict[tuple[str, str], float]) -> dict[str, list[float]]:
    region_of = {r.identity.device: r.fleet.home_region for r in sim.devices}
    return {region: sorted(round(ms, 2) for (device, _), ms in case_ms.items() if region_of[device] == region)
            for region in sorted(set(region_of.values()))}  # fmt: skip


def build_report(sim: Simulation, seconds: float, drained: bool, interrupted: bool) -> Report:
    stores = read_stores(sim)
    by_fleet = fleet_counts(stores)
    logs = _log_records(sim.log_dir)
    metrics = _emf_totals(logs)
    duplicates = _duplicates_by_fleet(logs)
    names = sorted({r.fleet.name for r in sim.devices})
    case_ms = _case_latencies(sim)
    fleets = [_fleet(name, sim, case_ms, by_fleet.get(name, Counter()), duplicates) for name in names]
    books = _books(sim, stores)
    return Report(
        seconds=seconds,
        throughput_per_s=books.aggregated / seconds if seconds else 0.0,
        drained=drained,
        interrupted=interrupted,
        options={
            k: (str(v) if isinstance(v, Path) else asdict(v) if isinstance(v, Faults) else v)
            for k, v in vars(sim.options).items()
        },
        fleets=fleets,
        books=books,
        metrics=dict(metrics),
        duplicates_suppressed=metrics.get("DuplicatesSuppressed", 0),
        faults=FaultCounts(injected=sim.options.faults.describe(), **_fault_counts(sim, logs)),
        stages=_stages(sim),
        escalation_timeline=_timeline(sim),
        drift=_drift(sim, logs),
        greengrass={
            run.identity.device: {c.name: c.version for c in run.core.components.values()}
            for run in sim.devices
            if run.core is not None
        },
        latencies_ms=_latencies_by_region(sim, case_ms),
        aws_calls_per_1000_cases=_calls_per_1000(sim, books.aggregated),
    )


def _drift(sim: Simulation, records: list[dict[str, Any]]) -> dict[str, FleetDrift]:
    """Per fleet: the PSI values the aggregate function reported over time, against its alarm's threshold.

    The threshold is the one the synthesized `ModelDrift` alarm holds; it fires when a value is over it.
    """
    thresholds: dict[str, float] = {}
    for stack in sim.stacks:
        for alarm in stack.resources("AWS::CloudWatch::Alarm").values():
            props = alarm["Properties"]
            if props.get("MetricName") == "ModelDrift":
                fleet = next(d["Value"] for d in props.get("Dimensions", []) if d["Name"] == "Fleet")
                thresholds[fleet] = float(props["Threshold"])
    points = sorted((r["_aws"]["Timestamp"] / 1000, str(r.get("Fleet")), _emf_value(r["ModelDrift"]),
                     str(r.get("model"))) for r in records if "ModelDrift" in r and "_aws" in r)  # fmt: skip
    t0 = min((p[0] for p in points), default=0.0)
    out: dict[str, FleetDrift] = {}
    for fleet in sorted({r.fleet.name for r in sim.devices}):
        threshold = thresholds.get(fleet)
        series = [(round(t - t0, 2), value, model) for t, f, value, model in points if f == fleet]
        over = [t for t, value, _ in series if threshold is not None and value > threshold]
        out[fleet] = FleetDrift(
            threshold=threshold, max_psi=max((v for _, v, _ in series), default=None),
            alarm=bool(over), first_alarm_s=over[0] if over else None,
            models=sorted({m for _, _, m in series}), timeline=[(t, v) for t, v, _ in series],
        )  # fmt: skip
    return out


def _timeline(sim: Simulation) -> dict[str, list[tuple[float, float]]]:
    """Escalation rate per fleet over time, in about 40 time buckets whatever the run's length."""
    out: dict[str, list[tuple[float, float]]] = {}
    times = [t for r in sim.devices for t, _ in r.decisions]
    if not times:
        return out
    t0 = min(times)
    width = max((max(times) - t0) / 40, 0.05)
    for name in sorted({r.fleet.name for r in sim.devices}):
        buckets: dict[int, list[bool]] = {}
        for run in (r for r in sim.devices if r.fleet.name == name):
            for t, escalated in run.decisions:
                buckets.setdefault(int((t - t0) / width), []).append(escalated)
        out[name] = [(round(b * width, 3), sum(v) / len(v)) for b, v in sorted(buckets.items())]
    return out
