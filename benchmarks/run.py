"""Benchmarks of the inference function, each against a baseline measured in the same run.

    make bench        (writes BENCHMARKS.md)

The machine is noisy, so every figure is a ratio to a baseline timed in the same process and
the same minutes, interleaved; absolute times are shown for context only.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGION = "eu-central-1"
LAMBDA_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "JURISDICTION": "eu",
    "MODEL_DIR": str(ROOT / "models"),
    "DEFAULT_MODEL": "digits-cloud",
    "RESULTS_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/123456789012/bench-results",
    "QUARANTINE_BUCKET": "domicile-data-eu-central-1",
    "ALLOWED_REGIONS": "eu-central-1,eu-west-1",
    "POWERTOOLS_METRICS_NAMESPACE": "Domicile",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Callable[[], Any], repeat: int, reset: Callable[[], Any] | None = None) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
        if reset:
            reset()  # untimed clean-up between samples
    return samples


def interleaved(
    fns: dict[str, Callable[[], Any]], repeat: int, rounds: int = 5, reset: Callable[[], Any] | None = None
) -> dict[str, list[float]]:
    """Run each candidate in turn, several rounds, so drift in machine load hits all of them."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            out[name].extend(timed(fn, repeat // rounds, reset))
    return out


def bench_http(ctx: Any, rows: int) -> dict[str, Any]:
    import numpy as np

    from domicile.models.datasets import load_digits_splits
    from functions.inference import http_api

    data = [float(v) for v in load_digits_splits().test.x[:rows].ravel()]
    tensor = {"name": "pixels", "shape": [rows, 64], "datatype": "FP32", "data": data}
    body = json.dumps({"inputs": [tensor]})
    event = json.loads((ROOT / "events" / "http-infer.json").read_text())
    event.update(body=body, isBase64Encoded=False)
    session = http_api.runtime.session("digits-cloud")

    def raw() -> None:
        request = json.loads(body)
        x = np.asarray(request["inputs"][0]["data"], dtype=np.float32).reshape(rows, 64)
        session.run(["label", "probabilities"], {"pixels": x})

    def handler() -> None:
        response = http_api.handler(event, ctx)
        assert response["statusCode"] == 200

    with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics go to stdout; keep the cost, drop the text
        for _ in range(200):
            handler()
            raw()
        samples = interleaved({"handler": handler, "raw": raw}, repeat=3000)
    p = {name: {"p50_us": percentile(s, 0.5) * 1e6, "p99_us": percentile(s, 0.99) * 1e6} for name, s in samples.items()}
    return {
        "handler": p["handler"],
        "raw_session_run_plus_json": p["raw"],
        "p50_ratio": p["handler"]["p50_us"] / p["raw"]["p50_us"],
        "p99_ratio": p["handler"]["p99_us"] / p["raw"]["p99_us"],
    }


def bench_sqs(ctx: Any) -> dict[str, Any]:
    import boto3
    import numpy as np
    from moto import mock_aws

    from domicile.models.datasets import load_digits_splits

    x = load_digits_splits().test.x
    template = json.loads((ROOT / "events" / "sqs-escalations.json").read_text())
    good = json.loads(template["Records"][0]["body"])

    def record(i: int) -> dict[str, Any]:
        body = copy.deepcopy(good)
        body["message_id"] = str(uuid.uuid4())
        body["payload"]["features"] = [float(v) for v in x[i % len(x)]]
        rec: dict[str, Any] = copy.deepcopy(template["Records"][0])
        rec.update(messageId=str(uuid.uuid4()), body=json.dumps(body))
        return rec

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        sqs.create_queue(QueueName="bench-results")
        from functions.inference import sqs_batch

        batch = {"Records": [record(i) for i in range(10)]}
        singles = [{"Records": [r]} for r in batch["Records"]]
        session = sqs_batch.runtime.session("digits-cloud")
        matrix = np.stack(
            [np.asarray(json.loads(r["body"])["payload"]["features"], np.float32) for r in batch["Records"]]
        )

        def batched() -> None:
            assert sqs_batch.handler(batch, ctx)["batchItemFailures"] == []

        def per_record() -> None:
            for single in singles:
                sqs_batch.handler(single, ctx)

        def raw_vectorized() -> None:
            session.run(["label", "probabilities"], {"pixels": matrix})

        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(5):
                batched()
                per_record()
            # moto's SendMessage cost grows with the queue's length (a real queue's does not): empty it
            # between samples so every sample sends into a queue of the same size.
            queue_url = sqs_batch.settings.results_queue_url or ""

            def empty_queue() -> None:
                sqs.delete_queue(QueueUrl=queue_url)
                sqs.create_queue(QueueName="bench-results")

            samples = interleaved(
                {"batch": batched, "loop": per_record, "raw": raw_vectorized}, repeat=200, reset=empty_queue
            )
            # The same, with the send replaced by serializing the envelopes it would send: what our
            # code costs, without moto's per-message bookkeeping (a real SendMessageBatch is one
            # round trip whatever the count, so moto's per-message cost hides the batching gain).
            real_send = sqs_batch.sink.send

            def serialize_only(pairs: Sequence[tuple[str, Any]]) -> list[str]:
                for _, envelope in pairs:
                    envelope.model_dump_json()
                return []

            setattr(sqs_batch.sink, "send", serialize_only)  # noqa: B010  (patched for this measurement only)
            try:
                local = interleaved({"batch": batched, "loop": per_record}, repeat=200)
            finally:
                setattr(sqs_batch.sink, "send", real_send)  # noqa: B010
    rate = {name: 10 / statistics.median(s) for name, s in samples.items()}
    local_rate = {name: 10 / statistics.median(s) for name, s in local.items()}
    return {
        "records_per_s": rate,
        "batch_vs_loop": rate["batch"] / rate["loop"],
        "batch_vs_raw": rate["batch"] / rate["raw"],
        "compute_records_per_s": local_rate,
        "compute_batch_vs_loop": local_rate["batch"] / local_rate["loop"],
        "note": "AWS calls go to moto in-process; a real SQS round trip costs more, which favours batching further",
    }


def bench_asset() -> dict[str, Any]:
    import tempfile

    from infra.bundling import build_asset
    from infra.constructs.inference_function import ARCHITECTURE, RUNTIME

    with tempfile.TemporaryDirectory() as tmp:
        build_asset(Path(tmp), RUNTIME, ARCHITECTURE)  # the cloud function's asset
        files = [f for f in Path(tmp).rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        biggest: dict[str, int] = {}
        for f in files:
            part = f.relative_to(tmp).parts[0]
            biggest[part] = biggest.get(part, 0) + f.stat().st_size
    top = sorted(biggest.items(), key=lambda kv: -kv[1])[:5]
    return {
        "unzipped_mb": size / 2**20,
        "limit_mb": 250,
        "largest": {k: round(v / 2**20, 1) for k, v in top},
        "runtime": RUNTIME.name,
        "architecture": ARCHITECTURE.name,
    }


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def write_report(results: dict[str, Any], path: Path) -> None:
    http, http64 = results["http"], results["http_64"]
    sqs, cold, asset = results["sqs"], results["cold"], results["asset"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` on {results['when']} ({results['machine']}). Every figure is a ratio to a",
        "baseline measured in the same run, interleaved; absolute times are for context only.",
        "",
        "| benchmark | ours | baseline | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
        f"| HTTP handler p50, 1 row (OIP v2, cloud model) | {http['handler']['p50_us']:.0f} us | "
        f"{http['raw_session_run_plus_json']['p50_us']:.0f} us (JSON decode + `session.run`) | "
        f"{http['p50_ratio']:.2f}x | <= 1.5x | {verdict(http['p50_ratio'] <= 1.5)} |",
        f"| HTTP handler p99 | {http['handler']['p99_us']:.0f} us | "
        f"{http['raw_session_run_plus_json']['p99_us']:.0f} us | {http['p99_ratio']:.2f}x | - | - |",
        f"| HTTP handler p50, 64 rows in one request | {http64['handler']['p50_us']:.0f} us | "
        f"{http64['raw_session_run_plus_json']['p50_us']:.0f} us | {http64['p50_ratio']:.2f}x | - | - |",
        f"| SQS batch of 10 throughput, sends to moto | {sqs['records_per_s']['batch']:.0f} rec/s | "
        f"{sqs['records_per_s']['loop']:.0f} rec/s (one invocation per record) | {sqs['batch_vs_loop']:.1f}x | >= 5x | "
        f"{verdict(sqs['batch_vs_loop'] >= 5)} |",
        f"| SQS batch of 10, our code only (send = serialize) | {sqs['compute_records_per_s']['batch']:.0f} rec/s | "
        f"{sqs['compute_records_per_s']['loop']:.0f} rec/s (one invocation per record) | "
        f"{sqs['compute_batch_vs_loop']:.1f}x | >= 5x | {verdict(sqs['compute_batch_vs_loop'] >= 5)} |",
        f"| SQS batch of 10 vs raw vectorized run | {sqs['records_per_s']['batch']:.0f} rec/s | "
        f"{sqs['records_per_s']['raw']:.0f} rec/s (one `session.run` of 10 rows) | "
        f"{sqs['batch_vs_raw']:.3f}x | - | - |",
        f"| Cold init (import + sessions), HTTP entry point | {cold['handler_ms']:.0f} ms | {cold['bare_ms']:.0f} ms "
        f"(`import onnxruntime` + 2 sessions) | {cold['ratio']:.2f}x | <= 1.3x | {verdict(cold['ratio'] <= 1.3)} |",
        f"| Function asset, unzipped ({asset['runtime']}, {asset['architecture']}) | {asset['unzipped_mb']:.1f} MB | "
        f"{asset['limit_mb']} MB (Lambda limit) | {asset['unzipped_mb'] / asset['limit_mb']:.2f}x | <= 150 MB | "
        f"{verdict(asset['unzipped_mb'] <= 150)} |",
        "",
        f"Largest parts of the asset (MB): {asset['largest']}.",
        "",
        f"SQS note: {sqs['note']}.",
        "",
        "Reading the HTTP and cold-init rows: for one 64-feature row the model runs in about 10 us, so the",
        "fixed cost around it (Logger context, EMF metrics and their flush, JSON in and out) dominates the",
        f"ratio; with 64 rows per request it falls to {http64['p50_ratio']:.1f}x. The two tables below break",
        "both down. Cold init: the entry point loads no boto3, no X-Ray SDK, no Powertools event_handler and",
        "no pydantic (its settings, manifest read and OIP request parse are plain code); what is left above",
        "bare onnxruntime is Powertools' Logger and Metrics, our modules and OpenSSL's hashlib.",
        "",
    ]
    from benchmarks.http_stages import report_lines as stage_lines

    lines += stage_lines(results["http_stages"])
    from benchmarks.cold_start import report_lines as cold_lines

    lines += cold_lines(cold)
    from benchmarks.edge import report

    lines += report(results["edge_modes"], results["aggregate"])
    from benchmarks.edge import sensor_report

    lines += sensor_report(results["sensor_modes"])
    from benchmarks.simulate import report_lines

    lines += report_lines(results["simulate"])
    from benchmarks.pipeline import report_lines as pipeline_lines

    lines += pipeline_lines(results["pipeline"])
    from benchmarks.serve_vs_mlserver import report_lines as mlserver_lines

    lines += mlserver_lines(results["serve_vs_mlserver"])
    from benchmarks.split import SENSOR_READING
    from benchmarks.split import report_lines as split_lines

    lines += split_lines(results["split"])
    lines += split_lines(results["sensor_split"], SENSOR_READING)
    lines += ["The raw JSON of this run is in `benchmarks/results.json`.", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    from benchmarks.cold_start import bench_cold
    from benchmarks.edge import bench_aggregate, bench_modes, bench_sensor_modes
    from benchmarks.http_stages import bench_http_stages
    from benchmarks.pipeline import bench_pipeline
    from benchmarks.serve_vs_mlserver import bench_serve_vs_mlserver
    from benchmarks.simulate import bench_simulate
    from benchmarks.split import bench_sensor_split, bench_split

    os.environ.update(LAMBDA_ENV)
    os.environ.update(AGGREGATES_TABLE="domicile-aggregates", ARCHIVE_BUCKET="domicile-data-eu-central-1")
    from domicile_local.invoke import LambdaContext

    ctx = LambdaContext(function_name="bench")
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "http": bench_http(ctx, rows=1),
        "http_64": bench_http(ctx, rows=64),
        "sqs": bench_sqs(ctx),
        "http_stages": bench_http_stages(ctx),
        "serve_vs_mlserver": bench_serve_vs_mlserver(),
        "cold": bench_cold(),
        "asset": bench_asset(),
        "edge_modes": bench_modes(),
        "sensor_modes": bench_sensor_modes(),
        "aggregate": bench_aggregate(),
        "simulate": bench_simulate(),
        "pipeline": bench_pipeline(),
        "split": bench_split(),
        "sensor_split": bench_sensor_split(),
    }
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, ROOT / "BENCHMARKS.md")
    print((ROOT / "BENCHMARKS.md").read_text())


if __name__ == "__main__":
    main()
