"""Lambda workers: each function of the templates runs its real handler in its own process.

Like a Lambda execution environment: the function's resolved environment, its asset folder on the
path for our code (third-party packages come from this machine's environment, since the asset holds
wheels for Lambda's CPU), one invocation at a time, the module initialised once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from domicile.sim.assembly import Function

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _worker_main(handler: str, asset_dir: str, env: dict[str, str], conn: Connection, log_path: str) -> None:
    os.environ.update(env)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115  (lives as long as the worker)
    sys.stdout = sys.stderr = log
    # Our code comes from the asset, as in Lambda; the project checkout is not on the path.
    sys.path = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != PROJECT_ROOT]
    sys.path.append(asset_dir)
    from domicile.local_invoke import LambdaContext, load_handler

    try:
        fn = load_handler(handler)
    except Exception as exc:
        conn.send(("init-error", f"{type(exc).__name__}: {exc}", 0.0))
        return
    conn.send(("ready", None, 0.0))
    while True:
        message = conn.recv()
        if message is None:
            return
        event, function_name = message
        started = time.perf_counter()
        context = LambdaContext(function_name=function_name, region=env.get("AWS_REGION", ""),
                                aws_request_id=str(uuid.uuid4()))  # fmt: skip
        try:
            result = fn(event, context)
            conn.send(("ok", result, time.perf_counter() - started))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}", time.perf_counter() - started))


@dataclass
class InvokeStats:
    invocations: int = 0
    errors: int = 0
    seconds: float = 0.0


class LambdaWorker:
    def __init__(self, function: Function, endpoint: str, log_dir: Path) -> None:
        self.function = function
        self.stats = InvokeStats()
        self.log_path = log_dir / f"{function.stack}.{function.logical_id}.log"
        env = {
            **function.environment,
            "AWS_REGION": function.region,
            "AWS_DEFAULT_REGION": function.region,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "simulation",
            "AWS_SECRET_ACCESS_KEY": "simulation",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_worker_main,
            args=(function.handler, str(function.asset_dir), env, child, str(self.log_path)),
            daemon=True,
            name=f"lambda:{function.key}",
        )
        self._process.start()
        self._lock = threading.Lock()
        self._ready = False

    def wait_ready(self, timeout: float = 120.0) -> None:
        if self._ready:
            return
        if not self._conn.poll(timeout):
            raise RuntimeError(f"{self.function.key}: the handler did not initialise in {timeout}s")
        status, detail, _ = self._conn.recv()
        if status != "ready":
            raise RuntimeError(f"{self.function.key}: init failed: {detail} (see {self.log_path})")
        self._ready = True

    def invoke(self, event: Any) -> tuple[bool, Any]:
        """Synchronous invoke: (True, result) or (False, error text)."""
        with self._lock:
            self.wait_ready()
            self._conn.send((event, self.function.name))
            status, detail, seconds = self._conn.recv()
        self.stats.invocations += 1
        self.stats.seconds += seconds
        if status != "ok":
            self.stats.errors += 1
            return False, detail
        return True, detail

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
