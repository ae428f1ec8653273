"""Edge benchmarks: what each fleet mode costs on the wire, and aggregation throughput."""

from __future__ import annotations

import copy
import json
import math
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IOT_UNIT = 5 * 1024
IOT_PRICE_PER_MILLION = 1.00  # USD per million 5 KB units, us-east-1 list price for the first billion


class _Meter:
    """A transport that only measures what would go to IoT Core."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.units = 0

    def publish(self, topic: str, payload: bytes) -> None:
        self.messages += 1
        self.bytes += len(payload)
        self.units += math.ceil(len(payload) / IOT_UNIT)

    def close(self) -> None:
        return None


def bench_modes() -> dict[str, Any]:
    """The digits models on the digits test split."""
    from domicile.models.datasets import load_digits_splits
    from domicile.models.runtime import ModelRuntime

    test = load_digits_splits().test
    return mode_rows(ModelRuntime(ROOT / "models"), "digits-edge", "digits-cloud", test.x, test.y)


def bench_sensor_modes() -> dict[str, Any]:
    """The BasicMotions models, trained by the example's own script and added with `models add`, on their data."""
    from domicile.models.add import label_indexes, load_validation
    from domicile.models.runtime import ModelRuntime

    with example_registry() as registry:
        data = load_validation(registry.parent / "validation.npz")
        rows = mode_rows(ModelRuntime(registry), "motion-edge", "motion-cloud", data.x,
                         label_indexes(data.y, MOTION_LABELS, len(data.x)))  # fmt: skip
    return rows | {"data": "BasicMotions test split (sktime), 6 x 100 float32 windows, 4 activities"}


MOTION_LABELS = ("badminton", "running", "standing", "walking")


@contextmanager
def example_registry() -> Iterator[Path]:
    """A registry of the BasicMotions models: trained by the example's script, added with `models add`
    (motion-edge, motion-cloud, and motion-cloud again as motion-split, cut at `features`)."""
    import subprocess
    import sys

    from domicile.models.add import AddRequest, add_model
    from domicile.split.partition import partition

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = ROOT / "examples" / "basic-motions" / "train.py"
        subprocess.run([sys.executable, str(script), "--out", str(work)], check=True, capture_output=True)
        for name, file, role in (("motion-edge", "motion-edge", "edge"), ("motion-cloud", "motion-cloud", "cloud"),
                                 ("motion-split", "motion-cloud", "split")):  # fmt: skip
            add_model(work / "models", AddRequest(work / f"{file}.onnx", name, "1.0.0", role, work / "validation.npz",
                                                  ("eu",), MOTION_LABELS))  # fmt: skip
        partition("features", work / "models", "motion-split")
        yield work / "models"


def mode_rows(runtime: Any, edge: str, cloud: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Each fleet mode's accuracy and wire cost for cases `x` (labels `y`: class indexes) through the device code."""
    from domicile.config.topology import FleetMode
    from domicile.edge.device import EdgeDevice, EdgeModel
    from domicile.edge.forward import StoreAndForward
    from domicile.edge.spool import Spool
    from domicile.wire.topics import DeviceIdentity

    cloud_labels = runtime.predict(cloud, x).labels
    chosen = runtime.entry(edge).escalation
    assert chosen is not None
    label_index = {label: i for i, label in enumerate(runtime.entry(edge).class_labels)}
    identity = DeviceIdentity("bench-0", "munich-line", "eu", "eu-central-1")
    ids = [str(i) for i in range(len(x))]
    runs: list[tuple[str, FleetMode, float | None]] = [
        ("edge-only", FleetMode.EDGE_ONLY, None),
        ("cloud-only (raw offload)", FleetMode.CLOUD_ONLY, None),
        ("hybrid, threshold 0.5", FleetMode.HYBRID, 0.5),
        (f"hybrid, threshold {chosen.threshold} (manifest)", FleetMode.HYBRID, chosen.threshold),
        ("hybrid, threshold 0.9", FleetMode.HYBRID, 0.9),
    ]
    rows: list[dict[str, Any]] = []
    for name, mode, threshold in runs:
        meter = _Meter()
        with tempfile.TemporaryDirectory() as spool_dir:
            device = EdgeDevice(
                identity, mode, StoreAndForward(meter, Spool(spool_dir)), EdgeModel(runtime, edge, threshold)
            )
            decisions = device.infer(ids, x)
            device.close()
        labels = []
        for i, decision in enumerate(decisions):
            labels.append(int(cloud_labels[i]) if decision["escalated"] else label_index[decision["label"]])
        n = len(ids)
        rows.append(
            {
                "mode": name,
                "accuracy": float(np.mean(np.asarray(labels) == y)),
                "escalated": device.stats.escalated / n,
                "bytes_per_1000": meter.bytes * 1000 / n,
                "messages_per_1000": meter.messages * 1000 / n,
                "iot_units_per_1000": meter.units * 1000 / n,
                "usd_per_million_inferences": meter.units * 1e6 / n * IOT_PRICE_PER_MILLION / 1e6,
            }
        )
    raw = next(r for r in rows if r["mode"].startswith("cloud-only"))
    for row in rows:
        row["bytes_vs_raw"] = row["bytes_per_1000"] / raw["bytes_per_1000"]
        row["accuracy_points_vs_cloud"] = (row["accuracy"] - raw["accuracy"]) * 100
    return {"rows": rows, "inferences": len(ids), "manifest_threshold": chosen.threshold}


def bench_aggregate(batches: int = 3, batch_size: int = 100) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from domicile_local.invoke import LambdaContext

    template = json.loads((ROOT / "events" / "sqs-results.json").read_text())["Records"][0]
    envelope = json.loads(template["body"])
    results_per_envelope = 40
    envelope["payload"] = {
        "source": "edge",
        "case_ids": [f"c{i}" for i in range(results_per_envelope)],
        "labels": [str(i % 10) for i in range(results_per_envelope)],
        "confidence": [0.95] * results_per_envelope,
        "latency_ms": [0.05] * results_per_envelope,
    }

    def record() -> dict[str, Any]:
        body = copy.deepcopy(envelope)
        body["message_id"] = str(uuid.uuid4())
        rec: dict[str, Any] = copy.deepcopy(template)
        rec.update(messageId=str(uuid.uuid4()), body=json.dumps(body))
        return rec

    with mock_aws():
        from domicile_local.demo import REGION, create_aggregation_tables

        create_aggregation_tables(REGION)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="domicile-data-eu-central-1", CreateBucketConfiguration={"LocationConstraint": REGION})  # type: ignore[typeddict-item]
        from functions.aggregate import handler as aggregate

        ctx = LambdaContext(function_name="bench-aggregate")
        batched: list[float] = []
        single: list[float] = []
        for _ in range(batches):
            event = {"Records": [record() for _ in range(batch_size)]}
            started = time.perf_counter()
            assert aggregate.handler(event, ctx)["batchItemFailures"] == []
            batched.append(time.perf_counter() - started)
            records = [record() for _ in range(batch_size)]
            started = time.perf_counter()
            for rec in records:
                aggregate.handler({"Records": [rec]}, ctx)
            single.append(time.perf_counter() - started)
    results = batch_size * results_per_envelope
    rate = {"batch_of_100": results / statistics.median(batched), "one_by_one": results / statistics.median(single)}
    return {
        "results_per_s": rate,
        "ratio": rate["batch_of_100"] / rate["one_by_one"],
        "results_per_envelope": results_per_envelope,
        "note": "DynamoDB and S3 are moto in-process; a batch of 100 is archived with one S3 put and counted in "
        "as few transactions as fit 100 actions, where one envelope an invocation costs a put and a transaction "
        "each",
    }


def report(modes: dict[str, Any], aggregate: dict[str, Any]) -> list[str]:
    lines = mode_table(
        "Edge fleet modes (digits test split, per 1,000 inferences)",
        f"{modes['inferences']} held-out digits through the real edge device code; escalated cases are answered "
        "by the cloud model.",
        modes,
    )
    lines += [
        "## Aggregate function",
        "",
        f"| batch | results/s | ratio |\n|---|---|---|\n| 100 envelopes per invocation | "
        f"{aggregate['results_per_s']['batch_of_100']:,.0f} | {aggregate['ratio']:.2f}x |\n"
        f"| one envelope per invocation | {aggregate['results_per_s']['one_by_one']:,.0f} | 1.00x |",
        "",
        f"{aggregate['results_per_envelope']} results per envelope. {aggregate['note']}.",
        "",
    ]
    return lines


def sensor_report(modes: dict[str, Any]) -> list[str]:
    return mode_table(
        "Edge fleet modes on a user's own models (BasicMotions, per 1,000 inferences)",
        f"{modes['inferences']} windows of the {modes['data']}, through the same device code, with the models "
        "that `examples/basic-motions/train.py` trains and `domicile models add` registers (edge: per-channel "
        "mean and std with a logistic regression, logits out; cloud: an MLP on four statistics per channel). "
        "A raw case is 600 values, so raw offload costs more than one 5 KB unit per case.",
        modes,
    )


def mode_table(title: str, intro: str, modes: dict[str, Any]) -> list[str]:
    lines = [
        f"## {title}",
        "",
        intro + f" IoT Core meters messages in 5 KB units; cost at ${IOT_PRICE_PER_MILLION:.2f} per million units.",
        "",
        "| mode | accuracy | vs cloud-only | escalated | bytes | vs raw offload | messages | 5 KB units "
        "| USD per 1M inferences |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in modes["rows"]:
        lines.append(
            f"| {r['mode']} | {r['accuracy'] * 100:.2f}% | {r['accuracy_points_vs_cloud']:+.2f} pts | "
            f"{r['escalated'] * 100:.1f}% | {r['bytes_per_1000']:,.0f} | {r['bytes_vs_raw']:.2f}x | "
            f"{r['messages_per_1000']:.0f} | {r['iot_units_per_1000']:.0f} | {r['usd_per_million_inferences']:.2f} |"
        )
    hybrid = next(r for r in modes["rows"] if "(manifest)" in r["mode"])
    met = hybrid["accuracy_points_vs_cloud"] >= -0.5 and hybrid["bytes_vs_raw"] <= 0.2
    lines += [
        "",
        f"Target (hybrid within 0.5 points of cloud-only, at most 1/5 of raw offload's bytes), at the manifest's "
        f"threshold {modes['manifest_threshold']}: {'met' if met else 'NOT met'} "
        f"({hybrid['accuracy_points_vs_cloud']:+.2f} pts, {hybrid['bytes_vs_raw']:.2f}x).",
        "",
    ]
    return lines
