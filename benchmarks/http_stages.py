"""Where an OIP infer request's time goes in the HTTP entry point, stage by stage.

Each stage is measured as the difference between two cumulative prefixes of the real request
path (decode; decode + run; ... ; the whole Lambda handler), timed interleaved in one process, so
a stage carries the cache effects of the stages before it, as it does in a real request. Timing
each stage alone would flatter the sum.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.run import ROOT

STAGES = (
    ("parse", "JSON body to objects"),
    ("validate", "OIP request model, tensor checks, numpy batch"),
    ("run", "`session.run` and the predictions"),
    ("encode", "OIP response and its JSON"),
    ("metrics", "two EMF metrics added"),
    ("route", "event to request, route match, response dict"),
    ("powertools", "Logger context and the EMF flush (the handler's decorators)"),
)


def _prefixes(ctx: Any, rows: int) -> dict[str, Callable[[], Any]]:
    from aws_lambda_powertools.metrics import MetricUnit

    from domicile.models.datasets import load_digits_splits
    from domicile.wire.json_object import json_object
    from domicile.wire.oip import decode_infer_request, encode_infer_response
    from functions.inference import http_api
    from functions.inference.router import HttpResponse, request_of
    from functions.inference.shared import metrics

    data = [float(v) for v in load_digits_splits().test.x[:rows].ravel()]
    body = json.dumps({"inputs": [{"name": "pixels", "shape": [rows, 64], "datatype": "FP32", "data": data}]})
    event = json.loads((ROOT / "events" / "http-infer.json").read_text())
    event.update(body=body, isBase64Encoded=False)
    request = request_of(event, http_api.settings.max_body_bytes)
    entry = http_api.runtime.entry("digits-cloud")

    def decode() -> tuple[Any, Any]:
        return decode_infer_request(request.body, entry, http_api.settings.max_batch_rows)

    def run() -> tuple[Any, Any]:
        oip_request, matrix = decode()
        return oip_request, http_api.runtime.run(entry, matrix)

    def encode() -> None:
        oip_request, predictions = run()
        HttpResponse(200, encode_infer_response(oip_request, predictions).body()).result()

    def with_metrics() -> None:
        encode()
        metrics.add_metric(name="InferenceLatency", unit=MetricUnit.Milliseconds, value=0.1)
        metrics.add_metric(name="Inferences", unit=MetricUnit.Count, value=rows)
        metrics.metric_set.clear()

    def respond() -> None:
        http_api.respond(event).result()
        metrics.metric_set.clear()

    return {
        "parse": lambda: json_object(request.body, "body", ""),
        "validate": decode,
        "run": run,
        "encode": encode,
        "metrics": with_metrics,
        "route": respond,
        "powertools": lambda: http_api.handler(event, ctx),
    }


def bench_http_stages(ctx: Any, rows: int = 1, repeat: int = 4000, rounds: int = 8) -> dict[str, Any]:
    prefixes = _prefixes(ctx, rows)
    samples: dict[str, list[float]] = {name: [] for name in prefixes}
    with contextlib.redirect_stdout(io.StringIO()):  # EMF flushes print; keep the cost, drop the text
        for fn in prefixes.values():
            for _ in range(200):
                fn()
        for _ in range(rounds):
            for name, fn in prefixes.items():
                for _ in range(repeat // rounds):
                    started = time.perf_counter()
                    fn()
                    samples[name].append(time.perf_counter() - started)
    cumulative = {name: statistics.median(s) * 1e6 for name, s in samples.items()}
    stages, before = {}, 0.0
    for name, _ in STAGES:
        stages[name] = max(0.0, cumulative[name] - before)
        before = cumulative[name]
    return {"rows": rows, "stage_us": stages, "total_us": cumulative["powertools"]}


def report_lines(result: dict[str, Any]) -> list[str]:
    total = result["total_us"]
    lines = [
        f"## HTTP handler stages ({result['rows']} row, p50)",
        "",
        "Each stage is the difference between two cumulative prefixes of the real request path, timed",
        "interleaved (`benchmarks/http_stages.py`).",
        "",
        "| stage | what | us | share |",
        "|---|---|---|---|",
    ]
    for name, what in STAGES:
        us = result["stage_us"][name]
        lines.append(f"| {name} | {what} | {us:.0f} | {us / total:.0%} |")
    lines += [f"| all | the Lambda handler | {total:.0f} | 100% |", ""]
    return lines
