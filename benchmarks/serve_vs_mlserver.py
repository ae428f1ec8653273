"""`domicile serve` against MLServer, the Python peer, serving the same ONNX model on this machine.

MLServer (its own venv, .tools/mlserver: `make bench` makes it) loads digits-cloud through the
minimal custom runtime in benchmarks/mlserver/; domicile serves it through the deployed handler.
Both run two model processes on this 2-core machine (`--workers 2`; MLServer's
`parallel_workers: 2` behind its own front process). The client is tritonclient's HTTP client for
both, in the same run:
- latency of a one-row infer, one request at a time, the two servers interleaved;
- requests/s with 8 client processes, each one request at a time, for a fixed time.
JSON for both; binary tensor data for domicile only: MLServer's REST server refuses it (422).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.run import ROOT, percentile

MLSERVER = ROOT / ".tools" / "mlserver" / "bin" / "mlserver"
MODEL = "digits-cloud"
READY_DEADLINE_S = 180.0
LATENCY_REQUESTS = 600  # per server and encoding, in rounds of 50
THROUGHPUT_S = 8.0
IN_FLIGHT = 8


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    from domicile_local.serve import wait_ready

    try:
        wait_ready(url, proc, READY_DEADLINE_S, f"/v2/models/{MODEL}/ready")
    except (RuntimeError, TimeoutError) as err:
        raise type(err)(f"{err}: {log.read_text()[-2000:]}") from err


def _start_mlserver(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    if not MLSERVER.exists():
        raise RuntimeError(f"{MLSERVER} is missing: run `make bench` (it makes .tools/mlserver)")
    port = _free_port()
    models = folder / MODEL
    models.mkdir(parents=True)
    (models / "model-settings.json").write_text(json.dumps({
        "name": MODEL, "implementation": "onnx_runtime.OnnxRuntime",
        "parameters": {"uri": str(ROOT / "models" / "digits-cloud-1.0.0.onnx"), "version": "1.0.0"},
    }))  # fmt: skip
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port(), "parallel_workers": 2,
        "host": "127.0.0.1",
    }))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "benchmarks" / "mlserver")}
    log = folder / "mlserver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(MLSERVER), "start", str(folder)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc, log)
    return proc, url


def _start_domicile(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    log = folder / "serve.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "domicile_local.cli", "serve", "--port", str(port), "--workers", "2"]
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc, log)
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _request(binary: bool) -> tuple[list[Any], list[Any]]:
    import numpy as np
    import tritonclient.http as triton

    from domicile.models.datasets import load_digits_splits

    row = load_digits_splits().test.x[:1].astype(np.float32)
    tensor = triton.InferInput("pixels", [1, 64], "FP32")
    tensor.set_data_from_numpy(row, binary_data=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")]
    return [tensor], outputs


def _latencies(urls: dict[str, str], binary: dict[str, bool]) -> dict[str, list[float]]:
    import tritonclient.http as triton

    clients = {name: triton.InferenceServerClient(url.removeprefix("http://")) for name, url in urls.items()}
    requests = {name: _request(binary[name]) for name in urls}
    samples: dict[str, list[float]] = {name: [] for name in urls}
    for name, client in clients.items():  # warm both: connections, sessions, caches
        for _ in range(50):
            client.infer(MODEL, requests[name][0], outputs=requests[name][1])
    for _ in range(LATENCY_REQUESTS // 50):
        for name, client in clients.items():
            for _ in range(50):
                started = time.perf_counter()
                client.infer(MODEL, requests[name][0], outputs=requests[name][1])
                samples[name].append(time.perf_counter() - started)
    return samples


def _client_loop(url: str, binary: bool, start_at: float, seconds: float) -> int:
    """One client process: one request at a time from `start_at` (wall clock) for `seconds`; how many it made."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url.removeprefix("http://"))
    inputs, outputs = _request(binary)
    for _ in range(5):
        client.infer(MODEL, inputs, outputs=outputs)
    time.sleep(max(0.0, start_at - time.time()))  # every client starts at the same instant
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.infer(MODEL, inputs, outputs=outputs)
        done += 1
    return done


def _throughput(url: str, binary: bool) -> float:
    """Requests/s with IN_FLIGHT client processes (tritonclient's own async calls queue on its gevent loop)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(IN_FLIGHT, mp_context=multiprocessing.get_context("spawn")) as pool:
        start_at = time.time() + 15.0  # time for every client process to start, import and warm up
        counts = list(pool.map(_client_loop, *zip(*[(url, binary, start_at, THROUGHPUT_S)] * IN_FLIGHT, strict=True)))
    return sum(counts) / THROUGHPUT_S


def _mlserver_refuses_binary(url: str) -> str:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    inputs, outputs = _request(True)
    try:
        triton.InferenceServerClient(url.removeprefix("http://")).infer(MODEL, inputs, outputs=outputs)
    except InferenceServerException as err:
        return f"refused ({err.status() or 'error'})"
    return "accepted"


def bench_serve_vs_mlserver() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="domicile-vs-mlserver-") as tmp:
        mlserver, ml_url = _start_mlserver(Path(tmp) / "mlserver")
        try:
            ours, our_url = _start_domicile(Path(tmp))
            try:
                urls = {"domicile": our_url, "mlserver": ml_url}
                json_samples = _latencies(urls, {"domicile": False, "mlserver": False})
                binary_samples = _latencies({"domicile": our_url}, {"domicile": True})
                rates = {
                    "domicile/json": _throughput(our_url, False),
                    "mlserver/json": _throughput(ml_url, False),
                    "domicile/binary": _throughput(our_url, True),
                }
                refusal = _mlserver_refuses_binary(ml_url)
            finally:
                _stop(ours)
        finally:
            _stop(mlserver)

    def summary(samples: list[float]) -> dict[str, float]:
        return {"p50_ms": percentile(samples, 0.5) * 1e3, "p99_ms": percentile(samples, 0.99) * 1e3,
                "mean_ms": statistics.fmean(samples) * 1e3}  # fmt: skip

    latency = {
        "domicile/json": summary(json_samples["domicile"]),
        "mlserver/json": summary(json_samples["mlserver"]),
        "domicile/binary": summary(binary_samples["domicile"]),
    }
    return {"latency": latency, "requests_per_s": rates, "mlserver_binary": refusal,
            "versions": _versions(), "in_flight": IN_FLIGHT, "seconds": THROUGHPUT_S}  # fmt: skip


def _versions() -> dict[str, str]:
    python = MLSERVER.with_name("python")
    code = "import importlib.metadata as m; print(m.version('mlserver'), m.version('onnxruntime'))"
    mlserver, ort = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.split()
    from importlib import metadata

    return {"mlserver": mlserver, "mlserver_onnxruntime": ort, "uvicorn": metadata.version("uvicorn"),
            "tritonclient": metadata.version("tritonclient")}  # fmt: skip


def report_lines(result: dict[str, Any]) -> list[str]:
    lat, rps = result["latency"], result["requests_per_s"]
    p50_ratio = lat["domicile/json"]["p50_ms"] / lat["mlserver/json"]["p50_ms"]
    rps_ratio = rps["domicile/json"] / rps["mlserver/json"]
    v = result["versions"]
    met = p50_ratio <= 1.0 and rps_ratio >= 1.0
    lines = [
        "## `domicile serve` against MLServer (same model, same machine, same run)",
        "",
        f"digits-cloud through tritonclient {v['tritonclient']}: domicile serve (uvicorn {v['uvicorn']}, the deployed "
        f"handler, 2 workers) and MLServer {v['mlserver']} (a minimal custom onnxruntime runtime, "
        "`benchmarks/mlserver/onnx_runtime.py`, 2 parallel workers). One-row infers; latency one request at a "
        f"time, interleaved; requests/s with {result['in_flight']} client processes for {result['seconds']:.0f} s. "
        f"MLServer's REST server {result['mlserver_binary']} binary tensor data, so binary is domicile's alone.",
        "",
        "| server / encoding | p50 ms | p99 ms | requests/s |",
        "|---|---|---|---|",
    ]
    for key in ("domicile/json", "mlserver/json", "domicile/binary"):
        lines.append(f"| {key} | {lat[key]['p50_ms']:.2f} | {lat[key]['p99_ms']:.2f} | {rps[key]:.0f} |")
    lines += [
        "",
        f"JSON, domicile vs MLServer: p50 {p50_ratio:.2f}x (target <= 1.0x), requests/s {rps_ratio:.2f}x "
        f"(target >= 1.0x): {'met' if met else 'NOT met'}.",
        "",
    ]
    return lines


if __name__ == "__main__":
    outcome = bench_serve_vs_mlserver()
    print(json.dumps(outcome, indent=2))
    print("\n".join(report_lines(outcome)))
