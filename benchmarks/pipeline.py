"""The pipeline per fleet mode and cloud path: AWS calls, invocations, latency and an estimated bill.

Each (mode, path) is one local run of domicile.toml's fleets, all switched to that mode and path,
DEVICES devices each; edge-only runs once more with one device a fleet, to show the per-batch floor.
What is counted is deterministic for a run (AWS calls our functions made, Lambda invocations, IoT
messages and rule actions); latency is this machine's. The baseline is the design
this release replaced, counted in the same run: the aggregate function's four calls per envelope (an
idempotency put, a transaction, an S3 put, an idempotency update) and, for escalations and split cases,
a direct invocation per case that sends its answer with one SendMessageBatch.

The bill uses public list prices (us-east-1, on-demand, no free tier; PRICES_READ) and what each
1,000 cases cost in the run, scaled to a million inferences. Lambda GB-s use the templates' memory
sizes and this machine's handler durations, which are not Lambda's: read them as an order of magnitude.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from domicile.config.topology import CloudPath, FleetMode, Topology

RECORDS = 150  # cases per device
# Devices per fleet. With one, a region's whole run is a handful of envelopes and the per-batch floor
# (a transaction, an archive put, a drift read) is most of what is counted; the extra edge-only run shows it.
DEVICES = 4
PRICES_READ = "2026-12-02, from the AWS pricing pages (us-east-1, on-demand, no free tier)"
PRICES = {
    "iot_message": 1.00 / 1e6,  # IoT Core messaging, per message (metered in 5 KB units; ours are smaller)
    "iot_rule": 0.15 / 1e6,  # IoT rules engine: per rule triggered
    "iot_action": 0.15 / 1e6,  # and per action executed
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": 0.0000133334,  # arm64
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB request
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit (a transactional write of <= 1 KB costs 2)
    "dynamodb_rru": 0.125 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
}
MEMORY_GB = {"Aggregation": 0.5}  # by construct; every inference function has 1 GB
SMALL_FLEETS = "edge-only/queued, 1 device a fleet"
TARGET_CALL_RATIO = 0.1  # calls per 1,000 cases: at most a tenth of the per-envelope design
RUNS = [
    (FleetMode.EDGE_ONLY, CloudPath.QUEUED),  # edge-only never reaches the cloud path
    (FleetMode.HYBRID, CloudPath.QUEUED), (FleetMode.HYBRID, CloudPath.DIRECT),
    (FleetMode.CLOUD_ONLY, CloudPath.QUEUED), (FleetMode.CLOUD_ONLY, CloudPath.DIRECT),
    (FleetMode.SPLIT, CloudPath.QUEUED), (FleetMode.SPLIT, CloudPath.DIRECT),
]  # fmt: skip


def _topology(base: Topology, mode: FleetMode, path: CloudPath) -> Topology:
    fleets = {n: f.model_copy(update={"mode": mode, "cloud_path": path}) for n, f in base.fleets.items()}
    return base.model_copy(update={"fleets": fleets})


def _run(topology: Topology, out: Path, devices: int = DEVICES) -> dict[str, Any]:
    from domicile_local.sim.report import build_report
    from domicile_local.sim.runner import SimOptions, Simulation
    from domicile_local.sim.synth import synthesize

    options = SimOptions(records=RECORDS, devices=devices, progress=False, out=out)
    sim = Simulation(topology, options, synthesize(topology, out), out)
    try:
        sim.setup()
        drained = sim.run()
        report = build_report(sim, 1.0, drained, interrupted=False).to_json()
    finally:
        sim.stop()
    return report


def _latencies(report: dict[str, Any]) -> tuple[float, float]:
    samples = sorted(ms for region in report["latencies_ms"].values() for ms in region)
    if not samples:
        return 0.0, 0.0

    def at(q: float) -> float:
        return float(samples[min(len(samples) - 1, int(q * len(samples)))])

    return at(0.5), at(0.99)


def measure(report: dict[str, Any], path: CloudPath) -> dict[str, Any]:
    """Per 1,000 cases aggregated: what the run counted, the per-envelope baseline, and the bill."""
    cases = report["books"]["aggregated"]
    handlers = report["stages"]["handlers"]
    calls: dict[str, int] = {}
    for stage in handlers.values():
        for op, n in stage["aws_calls"].items():
            calls[op] = calls.get(op, 0) + n
    ours = sum(calls.values())
    envelopes = int(report["metrics"].get("EnvelopesAggregated", 0))
    cloud_cases = sum(f["escalated"] + f["split"] for f in report["fleets"])
    baseline = 4 * envelopes + cloud_cases  # the per-envelope aggregate, and a send per cloud answer
    invocations = sum(s["invocations"] for s in handlers.values())
    gb_s = sum(s["invocations"] * s["mean_ms"] / 1000 * _memory_gb(key) for key, s in handlers.items())
    messages = sum(s["messages"] for s in report["stages"]["rules"].values())  # each publish triggers one rule
    sqs_fed = sum(s["invocations"] for k, s in handlers.items() if "Aggregation" in k or "InferenceSqs" in k)
    sqs_requests = (
        calls.get("sqs.SendMessageBatch", 0) + calls.get("sqs.SendMessage", 0)
        + sum(s["messages"] for n, s in report["stages"]["rules"].items() if _to_queue(n, path))
        + 2 * sqs_fed  # Lambda's poller: a receive that returned the batch and its delete (idle polls apart)
    )  # fmt: skip
    writes = 2 * (envelopes + calls.get("dynamodb.TransactWriteItems", 0))  # 2 WRU an item; items <= markers + rows
    # A drift read is one BatchGetItem a batch, of one histogram per fleet in it: at most every fleet's.
    reads = calls.get("dynamodb.GetItem", 0) + calls.get("dynamodb.BatchGetItem", 0) * len(report["fleets"])
    bill = {
        "IoT Core messages": messages * PRICES["iot_message"],
        "IoT rules and actions": messages * (PRICES["iot_rule"] + PRICES["iot_action"]),
        "Lambda requests": invocations * PRICES["lambda_request"],
        "Lambda GB-s": gb_s * PRICES["lambda_gb_s"],
        "SQS": sqs_requests * PRICES["sqs_request"],
        "DynamoDB": writes * PRICES["dynamodb_wru"] + reads * PRICES["dynamodb_rru"],
        "S3": calls.get("s3.PutObject", 0) * PRICES["s3_put"] + calls.get("s3.GetObject", 0) * PRICES["s3_get"],
    }
    per_million = {k: v / cases * 1e6 if cases else math.nan for k, v in bill.items()}
    p50, p99 = _latencies(report)
    return {
        "cases": cases, "balanced": report["books"]["balanced"], "envelopes": envelopes,
        "calls_per_1000": ours / cases * 1000 if cases else math.nan,
        "baseline_calls_per_1000": baseline / cases * 1000 if cases else math.nan,
        "invocations_per_1000": invocations / cases * 1000 if cases else math.nan,
        "calls": calls, "polling": report["stages"]["event_sources"],
        "latency_p50_ms": p50, "latency_p99_ms": p99,
        "bill_per_million": per_million, "bill_total_per_million": sum(per_million.values()),
    }  # fmt: skip


def _memory_gb(function_key: str) -> float:
    return next((gb for name, gb in MEMORY_GB.items() if name in function_key), 1.0)


def _to_queue(rule: str, path: CloudPath) -> bool:
    """Whether a rule's action sends to a queue: results always, escalations and split cases when queued."""
    kind = rule.split("_")[2]  # domicile_<jurisdiction>_<kind>[_<fleet>]
    return kind == "result" or path is CloudPath.QUEUED


def bench_pipeline() -> dict[str, Any]:
    from domicile.config.topology import load_topology

    base = load_topology()
    results: dict[str, Any] = {}
    for mode, path in RUNS:
        with tempfile.TemporaryDirectory(prefix="domicile-pipeline-") as tmp:
            results[f"{mode.value}/{path.value}"] = measure(_run(_topology(base, mode, path), Path(tmp)), path)
    edge_only = _topology(base, FleetMode.EDGE_ONLY, CloudPath.QUEUED)
    with tempfile.TemporaryDirectory(prefix="domicile-pipeline-") as tmp:
        results[SMALL_FLEETS] = measure(_run(edge_only, Path(tmp), devices=1), CloudPath.QUEUED)
    return results


def report_lines(results: dict[str, Any]) -> list[str]:
    lines = [
        "## AWS calls, invocations and cost per fleet mode and cloud path",
        "",
        f"One local run per row: domicile.toml's four fleets in that mode and on that path, {DEVICES} devices each, "
        f"{RECORDS} cases a device. Calls are those our functions make (Lambda's SQS polling apart); the baseline "
        "is the per-envelope design this release replaced, counted from the same run (4 calls per envelope "
        f"aggregated, 1 send per cloud answer). Target: at most {TARGET_CALL_RATIO:.0%} of the baseline. "
        "The last row is edge-only again with one device a fleet: a region's whole run is then about six "
        "envelopes of ~50 cases, so the per-batch floor (one transaction, one archive put, one drift read, "
        "whatever the batch holds) is most of its count; a batch costs 3 calls where the per-envelope design "
        "cost 4 an envelope, so the ratio is 0.75 / (envelopes a batch).",
        "",
        "| mode / path | cases | books | calls per 1,000 cases | baseline | ratio | verdict | invocations per 1,000 "
        "| p50 / p99 latency ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ratio = r["calls_per_1000"] / r["baseline_calls_per_1000"]
        lines.append(
            f"| {name} | {r['cases']} | {'balanced' if r['balanced'] else 'NOT balanced'} "
            f"| {r['calls_per_1000']:.0f} | {r['baseline_calls_per_1000']:.0f} | {ratio:.3f}x "
            f"| {'met' if ratio <= TARGET_CALL_RATIO else 'NOT met'} | {r['invocations_per_1000']:.0f} "
            f"| {r['latency_p50_ms']:.0f} / {r['latency_p99_ms']:.0f} |"
        )
    services = list(next(iter(results.values()))["bill_per_million"])
    lines += [
        "",
        f"Estimated AWS bill per million inferences (USD; list prices read {PRICES_READ}: IoT Core $1.00 per "
        "million messages, rules $0.15 per million triggered and $0.15 per million actions, Lambda $0.20 per "
        "million requests and $0.0000133334 per GB-s on arm64, SQS $0.40 per million requests, DynamoDB "
        "on-demand $0.625 per million write units (2 per transactional item) and $0.125 per million read "
        "units, S3 $0.005 per 1,000 PUTs; "
        "Lambda GB-s from this machine's durations; device connectivity, CloudWatch, KMS and data transfer "
        "are left out):",
        "",
        "| mode / path | " + " | ".join(services) + " | total |",
        "|---|" + "---|" * (len(services) + 1),
    ]
    for name, r in results.items():
        bill = r["bill_per_million"]
        lines.append(
            f"| {name} | " + " | ".join(f"{bill[s]:.2f}" for s in services) + f" | {r['bill_total_per_million']:.2f} |"
        )
    lines.append("")
    return lines


if __name__ == "__main__":
    import json

    outcome = bench_pipeline()
    print(json.dumps(outcome, indent=2, default=str))
    print("\n".join(report_lines(outcome)))
