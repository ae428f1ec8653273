"""Cold init of the HTTP entry point against bare `import onnxruntime` plus the same sessions, and
what each layer of imports adds on the way.

Every figure is the median of fresh interpreters started in turn, in the environment the function
gets in Lambda (`LAMBDA_TASK_ROOT` set, so Powertools behaves as it does there), after the
modules Lambda's runtime itself has imported by then (RUNTIME_PRELUDE). The ratio is the
entry point imported alone (what Lambda's init does) against bare. The layer table attributes it:
its steps are cumulative, each adding one layer to the one before, its cost the difference of the
medians (the last step makes the entry point's own sessions again, so the steps add up to a little
more than the entry point alone).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks.run import LAMBDA_ENV, ROOT

_BARE = """
import onnxruntime as ort
for name in ("digits-edge-1.0.0.onnx", "digits-cloud-1.0.0.onnx"):
    ort.InferenceSession(os.path.join({models!r}, name), providers=["CPUExecutionProvider"])
"""

# (step, what it adds, the code run after the steps before it)
STEPS = (
    ("bare", "`import onnxruntime` (with numpy) and the 2 sessions the function loads", _BARE),
    ("powertools", "Powertools Logger and Metrics", "from aws_lambda_powertools import Logger, Metrics\n"),
    (
        "domicile",
        "our settings, manifest reader, runtime and OIP modules",
        "import domicile.config.settings, domicile.models.serving, domicile.models.runtime, domicile.wire.oip\n",
    ),
    (
        "entry point",
        "the entry point: settings parsed, manifest read and hash-checked, routes",
        "import functions.inference.http_api\n",
    ),
)

# What Lambda's Python runtime has imported when it imports the handler, in both snippets and
# untimed: awslambdaric's bootstrap.py (importlib, json, logging, os, sys, time, traceback),
# lambda_runtime_client.py (concurrent.futures) and lambda_runtime_marshaller.py (decimal, math).
RUNTIME_PRELUDE = "import importlib, json, logging, os, sys, time, traceback, concurrent.futures, decimal, math"

_SNIPPET = (
    RUNTIME_PRELUDE
    + """
sys.path.insert(0, {root!r})
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
print(sorted(m for m in {heavy!r} if m in sys.modules))
print(elapsed)
"""
)
# Libraries the entry point keeps off its init path; the report says if one is loaded after all.
# (botocore's top package alone is expected: Powertools' user-agent hook imports it, about 0.5 ms.)
HEAVY = ("pydantic", "boto3", "botocore.client", "aws_xray_sdk")
_ALONE = "import functions.inference.http_api\n"


def _snippet(upto: int) -> str:
    body = "".join(code for _, _, code in STEPS[: upto + 1]).format(models=str(ROOT / "models"))
    return _SNIPPET.format(root=str(ROOT), body=body, heavy=HEAVY)


def _medians(env: dict[str, str], repeat: int) -> tuple[list[float], str]:
    """The median of each snippet (the layers, then the entry point alone), and what the last run loaded."""
    snippets = [_snippet(i) for i in range(len(STEPS))]
    snippets.append(_SNIPPET.format(root=str(ROOT), body=_ALONE, heavy=HEAVY))
    samples: list[list[float]] = [[] for _ in snippets]
    loaded = ""
    for run in range(repeat + 1):
        for i, snippet in enumerate(snippets):
            result = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(result.stderr)
            *_, loaded, elapsed = result.stdout.strip().splitlines()
            if run:  # the first pass writes the bytecode caches, where they are kept
                samples[i].append(float(elapsed) * 1e3)
    return [statistics.median(s) for s in samples], loaded


def bench_cold(repeat: int = 9) -> dict[str, Any]:
    # LAMBDA_TASK_ROOT makes Powertools behave as in Lambda.
    env = {**os.environ, **LAMBDA_ENV, "LAMBDA_TASK_ROOT": str(ROOT)}
    env.pop("POWERTOOLS_TRACE_DISABLED")
    # With bytecode caches for every module, ours included (a shell may set PYTHONDONTWRITEBYTECODE,
    # which would compile our modules from source on every run and no one else's).
    cached = {k: v for k, v in env.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    (*cumulative, alone), loaded = _medians(cached, repeat)
    # And with none anywhere, as the Lambda asset ships (bundling leaves no __pycache__): an empty
    # cache prefix makes every module, onnxruntime's and numpy's too, compile from source.
    with tempfile.TemporaryDirectory(prefix="domicile-nopyc-") as empty:
        uncached = {**cached, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty}
        (bare_source, *_, alone_source), _ = _medians(uncached, repeat)
    steps = [
        {"step": name, "adds": what, "ms": cumulative[i] - (cumulative[i - 1] if i else 0.0)}
        for i, (name, what, _) in enumerate(STEPS)
    ]
    return {
        "handler_ms": alone,
        "bare_ms": cumulative[0],
        "ratio": alone / cumulative[0],
        "steps": steps,
        "heavy_loaded": loaded,  # of HEAVY, what the entry point's init loaded (the last snippet run)
        "no_bytecode": {"handler_ms": alone_source, "bare_ms": bare_source, "ratio": alone_source / bare_source},
    }


def report_lines(cold: dict[str, Any]) -> list[str]:
    lines = [
        "## Cold init of the HTTP entry point, layer by layer",
        "",
        "Fresh interpreters in the Lambda environment, median of each cumulative step (`benchmarks/cold_start.py`).",
        "",
        "| step | adds | ms | vs bare |",
        "|---|---|---|---|",
    ]
    for step in cold["steps"]:
        lines.append(f"| {step['step']} | {step['adds']} | {step['ms']:.0f} | {step['ms'] / cold['bare_ms']:.2f}x |")
    lines += [
        f"| all | the entry point's cold init, imported alone | {cold['handler_ms']:.0f} | {cold['ratio']:.2f}x |",
        "",
    ]
    lines += [f"Of {', '.join(HEAVY)}, the entry point's init loaded: {cold.get('heavy_loaded', '?')}.", ""]
    source = cold.get("no_bytecode")
    if source:
        lines += [
            "With bytecode caches for every module, as above; with none anywhere, as the Lambda asset ships "
            f"(every module compiled from source, onnxruntime's and numpy's included): the entry point "
            f"{source['handler_ms']:.0f} ms against bare {source['bare_ms']:.0f} ms, {source['ratio']:.2f}x.",
            "",
        ]
    return lines
