"""The simulation's report: per region and fleet, the books, and plots people want to read."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from domicile.wire.keys import RowKind, row_kind
from domicile_local.sim.runner import Faults, Simulation

_EMF_METRICS = ("DuplicatesSuppressed", "ResidencyViolation", "BadInput", "EnvelopesAggregated", "Escalations")


def _cases_in(envelope: Any) -> list[tuple[str, str]]:
    """(fleet, case id) pairs an envelope (or a wrapper around one) carries."""
    if not isinstance(envelope, dict):
        return []
    if "requestPayload" in envelope:  # a Lambda async failure record
        return _cases_in(envelope["requestPayload"])
    if "base64OriginalPayload" in envelope:  # an IoT rule error-action record
        try:
            return _cases_in(json.loads(base64.b64decode(envelope["base64OriginalPayload"])))
        except (ValueError, json.JSONDecodeError):
            return []
    payload = envelope.get("payload") or {}
    fleet = str(envelope.get("fleet", "?"))
    device = str(envelope.get("device", "?"))
    if "case_ids" in payload:
        return [(fleet, f"{device}/{c}") for c in payload["case_ids"]]
    if "case_id" in payload:
        return [(fleet, f"{device}/{payload['case_id']}")]
    return []


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


def _quarantined(sim: Simulation) -> list[tuple[str, str]]:
    cases = []
    for stack in sim.stacks:
        s3 = sim.client("s3", stack.region)
        for lid in stack.resources("AWS::S3::Bucket"):
            bucket = stack.physical[lid]["Ref"]
            listing = s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/").get("Contents", [])
            for obj in listing:
                record = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                try:
                    cases += _cases_in(json.loads(record["message"]))
                except (json.JSONDecodeError, KeyError):
                    cases.append(("?", obj["Key"]))
    return cases


def _counted_in_tables(sim: Simulation) -> int:
    """Cases the aggregates tables count (every aggregate row's `count`): what DynamoDB itself says."""
    total = 0
    for stack in sim.stacks:
        dynamodb = sim.client("dynamodb", stack.region)
        for lid in stack.resources("AWS::DynamoDB::Table"):
            if "Aggregates" not in lid:
                continue
            for page in dynamodb.get_paginator("scan").paginate(TableName=stack.physical[lid]["Ref"]):
                for item in page["Items"]:
                    if row_kind(item["pk"]["S"]) is RowKind.COUNT:  # markers and histograms count nothing
                        total += int(float(item.get("count", {"N": "0"})["N"]))
    return total


def _fault_counts(sim: Simulation, logs: list[dict[str, Any]]) -> dict[str, int]:
    """What `--fault` injected, as the workers logged it and the runner counted it."""
    counts = {"write_errors": sum(1 for r in logs if r.get("fault") == "write-error"),
              "crashes": sum(w.crashes for w in sim.workers.values())}  # fmt: skip
    return {**counts, "duplicates_delivered": sim.fault_counts["duplicates_delivered"],
            "held_back": sim.fault_counts["held_back"],
            "device_kills": sum(run.restarts for run in sim.devices),
            "torn_spool_writes": sum(run.torn_writes for run in sim.devices),
            "cases_resumed": sum(run.resumed for run in sim.devices)}  # fmt: skip


def _dead_letters(sim: Simulation) -> tuple[int, list[tuple[str, str]]]:
    messages, cases = 0, []
    for stack in sim.stacks:
        sqs = sim.client("sqs", stack.region)
        for lid, resource in stack.resources("AWS::SQS::Queue").items():
            if "RedrivePolicy" in resource.get("Properties", {}):
                continue
            url = stack.physical[lid]["Ref"]
            while True:
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
                    "Messages", []
                )
                if not got:
                    break
                for message in got:
                    messages += 1
                    try:
                        cases += _cases_in(json.loads(message["Body"]))
                    except json.JSONDecodeError:
                        cases.append(("?", message["MessageId"]))
    return messages, cases


def _still_on_devices(sim: Simulation) -> list[tuple[str, str]]:
    """Cases in the devices' spools (a run cut short): not lost, just not sent yet."""
    cases = []
    for run in sim.devices:
        for entry in run.device.forward.spool.pending():
            try:
                cases += _cases_in(json.loads(entry.payload))
            except json.JSONDecodeError:
                cases.append((run.fleet.name, f"{run.identity.device}/spool-{entry.seq}"))
    return cases


def _raw_offload_bytes(run: Any) -> int:
    """What the same cases would cost as raw offload: the device's own escalate envelope for each."""
    total = 0
    for i in range(len(run.started)):
        envelope = run.device.escalation_envelope(f"{run.identity.device}-{i}", run.features(i), None)
        total += len(envelope.model_dump_json(exclude_none=True))
    return total


def build_report(sim: Simulation, seconds: float, drained: bool, interrupted: bool) -> dict[str, Any]:
    quarantined = _quarantined(sim)
    dlq_messages, dlq_cases = _dead_letters(sim)
    logs = _log_records(sim.log_dir)
    metrics = _emf_totals(logs)
    duplicates = _duplicates_by_fleet(logs)
    completions = sim.ledger.completions
    fleets: list[dict[str, Any]] = []
    for name in sorted({run.fleet.name for run in sim.devices}):
        runs = [r for r in sim.devices if r.fleet.name == name]
        fleet = runs[0].fleet
        started = {(r.identity.device, c): t for r in runs for c, t in r.started.items()}
        labels = {(r.identity.device, c): lbl for r in runs for c, lbl in r.labels.items()}
        done = {k: v for k, v in completions.items() if k in started}
        latencies = np.array([(v.at - started[k]) * 1000 for k, v in done.items()]) if done else np.array([0.0])
        correct = sum(v.label == str(labels[k]) for k, v in done.items())
        inferences = sum(r.device.stats.inferences for r in runs)
        sent = sum(r.device.stats.bytes_sent for r in runs)
        raw = sum(_raw_offload_bytes(r) for r in runs)
        fleets.append(
            {
                "fleet": name, "region": fleet.home_region, "jurisdiction": fleet.jurisdiction,
                "mode": runs[0].device.mode.value, "devices": len(runs), "cases": len(started),
                "inferences": inferences,  # more than the cases when a device resumed after a power cut
                "edge_answered": sum(r.device.stats.kept for r in runs),
                "escalated": sum(r.device.stats.escalated for r in runs),
                "split": sum(r.device.stats.split for r in runs),
                "aggregated": len(done),
                "accuracy": correct / len(done) if done else None,
                "bytes_sent": sent, "bytes_raw_offload": raw, "bytes_vs_raw": sent / raw if raw else None,
                "latency_ms": {q: float(np.percentile(latencies, q)) for q in (50, 95, 99)},
                "spooled": sum(r.device.forward.stats.spooled for r in runs),
                "replayed": sum(r.device.forward.stats.replayed for r in runs),
                "evicted": sum(r.device.forward.evicted for r in runs),
                "quarantined": sum(1 for f, _ in quarantined if f == name),
                "dlq": sum(1 for f, _ in dlq_cases if f == name),
                "duplicates_suppressed": duplicates.get(name, 0),
                "device_errors": [r.error for r in runs if r.error],
            }
        )  # fmt: skip
    published = sum(f["cases"] for f in fleets) + sim.injected
    aggregated = sum(f["aggregated"] for f in fleets)
    on_devices = _still_on_devices(sim)
    counted = _counted_in_tables(sim)
    difference = published - aggregated - len(quarantined) - len(dlq_cases) - len(on_devices)
    accounted = {c for _, c in quarantined + dlq_cases + on_devices} | {f"{d}/{c}" for d, c in completions}
    unaccounted = sorted(f"{r.identity.device}/{c}" for r in sim.devices for c in r.started)
    unaccounted = [c for c in unaccounted if c not in accounted]
    books = {
        "published": published, "aggregated": aggregated, "quarantined": len(quarantined),
        "in_dlq": len(dlq_cases), "dlq_messages": dlq_messages,
        "still_on_devices": len(on_devices), "difference": difference,
        "counted_in_tables": counted, "counted_twice": counted - aggregated,
        "balanced": difference == 0 and not unaccounted and counted == aggregated,
        "unaccounted_cases": unaccounted[:50],
        "injected_violations": sim.injected,
        "injected_quarantined": sum(1 for _, c in quarantined if "/violation-" in c),
    }  # fmt: skip
    stages = {
        "rules": {name: {"messages": int(s["messages"]), "mean_ms": s["seconds"] / s["messages"] * 1000}
                  for name, s in sim.rule_stats.items() if s["messages"]},
        "handlers": {w.function.key: {"invocations": w.stats.invocations, "errors": w.stats.errors,
                                      "mean_ms": w.stats.seconds / w.stats.invocations * 1000}
                     for w in sim.workers.values() if w.stats.invocations},
    }  # fmt: skip
    return {
        "seconds": seconds,
        "throughput_per_s": aggregated / seconds if seconds else 0.0,
        "drained": drained,
        "interrupted": interrupted,
        "options": {
            k: (str(v) if isinstance(v, Path) else asdict(v) if isinstance(v, Faults) else v)
            for k, v in vars(sim.options).items()
        },
        "fleets": fleets,
        "books": books,
        "metrics": dict(metrics),
        "duplicates_suppressed": metrics.get("DuplicatesSuppressed", 0),
        "faults": {"injected": sim.options.faults.describe(), **_fault_counts(sim, logs)},
        "stages": stages,
        "escalation_timeline": _timeline(sim),
        "drift": _drift(sim, logs),
        # what each device's local Greengrass core deployed from the templates: component -> version
        "greengrass": {
            run.identity.device: {c.name: c.version for c in run.core.components.values()}
            for run in sim.devices
            if run.core is not None
        },
    }


def _drift(sim: Simulation, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
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
    out: dict[str, dict[str, Any]] = {}
    for fleet in sorted({r.fleet.name for r in sim.devices}):
        threshold = thresholds.get(fleet)
        series = [(round(t - t0, 2), value, model) for t, f, value, model in points if f == fleet]
        over = [t for t, value, _ in series if threshold is not None and value > threshold]
        out[fleet] = {
            "threshold": threshold, "max_psi": max((v for _, v, _ in series), default=None),
            "alarm": bool(over), "first_alarm_s": over[0] if over else None,
            "models": sorted({m for _, _, m in series}), "timeline": [(t, v) for t, v, _ in series],
        }  # fmt: skip
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


def write_report(report: dict[str, Any], out: Path, sim: Simulation) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    paths = [out / "report.json", out / "report.md", *_plots(report, out, sim)]
    (out / "report.md").write_text(markdown(report, [p.name for p in paths[2:]]))
    return paths


@contextmanager
def _figure(path: Path, title: str, xlabel: str, ylabel: str) -> Iterator[Any]:
    """One plot: the axes to draw on, then labels, grid and a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        yield ax
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def _plots(report: dict[str, Any], out: Path, sim: Simulation) -> list[Path]:
    paths = [out / "accuracy_vs_bytes.png", out / "latency_cdf.png", out / "escalation_rate.png",
             out / "drift_psi.png"]  # fmt: skip
    with _figure(paths[0], "Accuracy vs bytes sent, per fleet and mode", "bytes sent / bytes of raw offload",
                 "accuracy against labels (%)") as ax:  # fmt: skip
        for f in report["fleets"]:
            if f["accuracy"] is not None and f["bytes_vs_raw"] is not None:
                ax.scatter(f["bytes_vs_raw"], f["accuracy"] * 100, s=60)
                ax.annotate(f"{f['fleet']} ({f['mode']})", (f["bytes_vs_raw"], f["accuracy"] * 100), fontsize=8,
                            xytext=(5, 5), textcoords="offset points")  # fmt: skip

    with _figure(paths[1], "End-to-end latency CDF per region",
                 "end-to-end latency, device to aggregate written (ms)", "fraction of cases") as ax:  # fmt: skip
        for region in sorted({f["region"] for f in report["fleets"]}):
            names = {f["fleet"] for f in report["fleets"] if f["region"] == region}
            started = {
                (r.identity.device, c): t for r in sim.devices if r.fleet.name in names for c, t in r.started.items()
            }
            values = sorted((c.at - started[k]) * 1000 for k, c in sim.ledger.completions.items() if k in started)
            if values:
                ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=region)
        ax.set_xscale("log")

    drift = " (drift from mid-stream)" if report["options"].get("drift") else ""
    with _figure(paths[2], f"Escalation rate over time{drift}", "seconds since the first case",
                 "cases escalated (%)") as ax:  # fmt: skip
        for name, points in report["escalation_timeline"].items():
            if points:
                ax.plot([p[0] for p in points], [p[1] * 100 for p in points], label=name, marker=".")

    with _figure(paths[3], f"Input drift (PSI) per fleet{drift}", "seconds since the first PSI",
                 "population stability index") as ax:  # fmt: skip
        thresholds = set()
        for name, fleet in report["drift"].items():
            if fleet["timeline"]:
                ax.plot([p[0] for p in fleet["timeline"]], [p[1] for p in fleet["timeline"]], label=name, marker=".")
            if fleet["threshold"] is not None:
                thresholds.add(fleet["threshold"])
        for threshold in thresholds:
            ax.axhline(threshold, color="red", linestyle="--", linewidth=1)
    return paths


HEADERS = ("region", "fleet", "mode", "cases", "edge/esc/split", "accuracy", "bytes/raw", "p50/p95/p99 ms",
           "spool/replay", "quar/DLQ/dup")  # fmt: skip


def rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for f in report["fleets"]:
        lat = f["latency_ms"]
        out.append(
            (
                f["region"], f["fleet"], f["mode"], str(f["cases"]),
                f"{f['edge_answered']}/{f['escalated']}/{f['split']}",
                "-" if f["accuracy"] is None else f"{f['accuracy'] * 100:.2f}%",
                "-" if f["bytes_vs_raw"] is None else f"{f['bytes_vs_raw']:.2f}x",
                f"{lat[50]:.0f}/{lat[95]:.0f}/{lat[99]:.0f}", f"{f['spooled']}/{f['replayed']}",
                f"{f['quarantined']}/{f['dlq']}/{f['duplicates_suppressed']}",
            )
        )  # fmt: skip
    return out


def books_line(report: dict[str, Any]) -> str:
    b = report["books"]
    equation = (
        f"published {b['published']} = aggregated {b['aggregated']} + quarantined {b['quarantined']} "
        f"+ in DLQ {b['in_dlq']}"
        + (f" + still spooled on devices {b['still_on_devices']}" if b["still_on_devices"] else "")
    )
    if b["balanced"]:
        return f"Books balance: {equation}."
    named = ", ".join(b["unaccounted_cases"][:10])
    return (
        f"Books do NOT balance: {equation} leaves a difference of {b['difference']}"
        + (f"; never accounted for: {named}" if named else "")
        + (f"; the aggregates tables count {b['counted_in_tables']} cases" if b["counted_twice"] else "")
        + "."
    )


def faults_line(report: dict[str, Any]) -> str | None:
    """What `--fault` injected, and whether the tables counted anything twice; None for a run without faults."""
    faults = report["faults"]
    if not faults["injected"]:
        return None
    b = report["books"]
    return (
        f"Faults injected: {faults['write_errors']} failed DynamoDB writes, {faults['crashes']} aggregate crashes "
        f"mid-batch, {faults['duplicates_delivered']} duplicate deliveries, {faults['held_back']} messages held back, "
        f"{faults['device_kills']} devices killed mid-spool-write ({faults['torn_spool_writes']} torn writes "
        f"discarded, {faults['cases_resumed']} cases resumed); "
        f"the aggregates tables count {b['counted_in_tables']} cases for {b['aggregated']} aggregated"
        + (" (nothing counted twice)." if b["counted_twice"] == 0 else f" ({b['counted_twice']} counted twice!).")
    )


def drift_line(report: dict[str, Any]) -> str:
    parts = []
    for name, fleet in report["drift"].items():
        if fleet["max_psi"] is None:
            parts.append(f"{name} -")
        elif fleet["alarm"]:
            parts.append(
                f"{name} {fleet['max_psi']:.2f} ALARM (over {fleet['threshold']} at {fleet['first_alarm_s']:.0f} s)"
            )
        else:
            parts.append(f"{name} {fleet['max_psi']:.2f}")
    return "Input drift, highest PSI per fleet: " + ", ".join(parts) + "."


def markdown(report: dict[str, Any], plots: list[str]) -> str:
    lines = [
        "# domicile simulate: report",
        "",
        f"{report['seconds']:.1f} s, {report['throughput_per_s']:.0f} inferences/s aggregated"
        + (" (interrupted: partial report)" if report["interrupted"] else "")
        + ("" if report["drained"] else " (the pipeline had not drained when the run ended)"),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    b = report["books"]
    lines += [
        "",
        books_line(report),
        "",
        drift_line(report),
        "",
        f"Duplicates suppressed by the aggregate function: {report['duplicates_suppressed']}. "
        f"Injected residency violations: {b['injected_violations']}, quarantined: {b['injected_quarantined']}.",
        "",
    ]
    if faults_line(report):
        lines += [str(faults_line(report)), ""]
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def print_summary(report: dict[str, Any], paths: list[Path]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))  # a pipe or CI log still gets whole columns
    table = Table(title="domicile simulate", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("region", "fleet", "mode") else "right")
    for row in rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(books_line(report))
    console.print(drift_line(report))
    if faults_line(report):
        console.print(faults_line(report))
    console.print(
        f"{report['throughput_per_s']:.0f} inferences/s aggregated over {report['seconds']:.1f} s; "
        f"duplicates suppressed: {report['duplicates_suppressed']}; "
        f"injected violations quarantined: {report['books']['injected_quarantined']}"
        f"/{report['books']['injected_violations']}"
    )
    console.print("report: " + ", ".join(str(p) for p in paths))
