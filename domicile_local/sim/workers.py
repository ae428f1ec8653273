"""Lambda workers: each function of the templates runs its real handler in its own process.

Like a Lambda execution environment: the function's resolved environment, its asset folder on the
path for our code (third-party packages come from this machine's environment, since the asset holds
wheels for Lambda's CPU), one invocation at a time, the module initialised once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from domicile_local.sim.assembly import Function

CRASH_EXIT_CODE = 70
# What a worker keeps of this machine's environment: the interpreter's, the locale, temp dirs, TLS roots
# and the pinned numeric kernels (the rest is the function's environment, as in Lambda).
INHERITED = ("PATH", "HOME", "LANG", "LC_", "TMP", "TEMP", "PYTHON", "VIRTUAL_ENV", "SSL_CERT", "REQUESTS_CA",
             "LD_LIBRARY_PATH", "OPENBLAS_", "NPY_", "OMP_", "COV_CORE", "COVERAGE")  # fmt: skip
MIN_CRASH_BATCH = 2  # --fault aggregate-crash: a batch of this many records or more dies once it has counted


@dataclass(frozen=True)
class WorkerFaults:
    """Faults injected at the AWS SDK boundary of one function (`domicile simulate --fault`)."""

    write_error_every: int = 0  # one envelope in N: the first transaction that holds it fails, as a throttled write
    crash_mid_batch: int = 0  # the process dies right after a batch's first transaction, this many times


def _install_faults(faults: WorkerFaults, state: dict[str, int]) -> None:
    """botocore event hooks on the default session, so every client the handler creates carries them."""
    import boto3
    from botocore.exceptions import ClientError

    boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    failed: set[str] = set()  # a transient error: each chosen envelope fails once, its retry goes through

    def chosen(marker: str) -> bool:
        return int(hashlib.sha256(marker.encode()).hexdigest(), 16) % max(faults.write_error_every, 1) == 0

    def before(params: dict[str, Any], **_: Any) -> None:
        markers = [str(i["Put"]["Item"]["pk"]["S"]) for i in params["TransactItems"] if "Put" in i]  # msg#<id>
        hit = [m for m in markers if faults.write_error_every and chosen(m) and m not in failed]
        if hit:
            failed.update(hit)
            print(json.dumps({"fault": "write-error", "markers": hit}), flush=True)
            error = {"Error": {"Code": "InternalServerError", "Message": "injected by domicile simulate --fault"}}
            raise ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]

    def after(**_: Any) -> None:
        state["written"] += 1
        if state["crashes_left"] > 0 and state["armed"] and state["written"] == 1:
            print(json.dumps({"fault": "crash", "after_writes": state["written"]}), flush=True)
            os._exit(CRASH_EXIT_CODE)  # as an out-of-memory kill: counted, never answered, no clean-up

    events.register("before-parameter-build.dynamodb.TransactWriteItems", before)
    events.register("after-call.dynamodb.TransactWriteItems", after)


def _count_calls(calls: Counter[str]) -> None:
    """Every AWS API call the function's code makes, as `service.Operation` (botocore's before-call event
    fires once per call, before retries; a call a fault hook refused never reached AWS and is not counted)."""
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()

    def count(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.service_name}.{model.name}"] += 1

    boto3.DEFAULT_SESSION.events.register("before-call", count)  # type: ignore[union-attr]


def _taken(calls: Counter[str]) -> dict[str, int]:
    """The calls counted since the last answer (and the counter emptied for the next)."""
    out = dict(calls)
    calls.clear()
    return out


def _worker_main(
    function: Function, env: dict[str, str], conn: Connection, log_path: str, faults: WorkerFaults
) -> None:
    handler, asset_dir, timeout_s = function.handler, str(function.asset_dir), function.timeout_s
    # Lambda gives a function its own variables and the runtime's, nothing of the machine that deployed it: a
    # variable of this process (a test's SPLIT_MODEL, a shell's AWS_PROFILE) must not reach the handler.
    for key in [k for k in os.environ if not k.startswith(INHERITED)]:
        del os.environ[key]
    os.environ.update(env)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115  (lives as long as the worker)
    sys.stdout = sys.stderr = log
    state = {"written": 0, "armed": 0, "crashes_left": faults.crash_mid_batch}
    if faults != WorkerFaults():
        _install_faults(faults, state)
    calls: Counter[str] = Counter()
    _count_calls(calls)
    from domicile_local.invoke import LambdaContext, load_handler

    try:
        fn = load_handler(handler, Path(asset_dir))  # our code from the asset, as in Lambda
    except Exception as exc:
        conn.send(("init-error", f"{type(exc).__name__}: {exc}", 0.0, _taken(calls)))
        return
    conn.send(("ready", None, 0.0, _taken(calls)))
    while True:
        message = conn.recv()
        if message is None:
            return
        event, function_name = message
        started = time.perf_counter()
        records = event.get("Records", []) if isinstance(event, dict) else []
        state["written"], state["armed"] = 0, int(len(records) >= MIN_CRASH_BATCH)
        context = LambdaContext(function_name=function_name, region=env.get("AWS_REGION", ""),
                                aws_request_id=str(uuid.uuid4()), timeout_s=timeout_s)  # fmt: skip
        try:
            result = fn(event, context)
            conn.send(("ok", result, time.perf_counter() - started, _taken(calls)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}", time.perf_counter() - started, _taken(calls)))


@dataclass
class InvokeStats:
    invocations: int = 0
    errors: int = 0
    seconds: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)  # AWS API calls its code made, by service.Operation


class LambdaWorker:
    def __init__(
        self, function: Function, endpoint: str, log_dir: Path, faults: WorkerFaults | None = None,
        secret_key: str = "simulation",
    ) -> None:  # fmt: skip
        self.function = function
        self.stats = InvokeStats()
        self.faults = faults or WorkerFaults()
        self.crashes = 0  # execution environments that died mid-invocation (and were replaced)
        self.log_path = log_dir / f"{function.stack}.{function.logical_id}.log"
        self._env = {
            **function.environment,
            "AWS_REGION": function.region,
            "AWS_DEFAULT_REGION": function.region,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "simulation",
            "AWS_SECRET_ACCESS_KEY": secret_key,  # a run's own secret: the tests check no log ever shows it
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        """A new execution environment (at first, and after one died)."""
        faults = replace(self.faults, crash_mid_batch=max(0, self.faults.crash_mid_batch - self.crashes))
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_worker_main,
            args=(self.function, self._env, child, str(self.log_path), faults),
            daemon=True,
            name=f"lambda:{self.function.key}",
        )
        self._process.start()
        self._ready = False

    @property
    def pid(self) -> int | None:
        """The current execution environment's process (a new one after a crash)."""
        return self._process.pid

    def wait_ready(self, timeout: float = 120.0) -> None:
        if self._ready:
            return
        if not self._conn.poll(timeout):
            raise RuntimeError(f"{self.function.key}: the handler did not initialise in {timeout}s")
        status, detail, _, calls = self._conn.recv()
        self.stats.calls.update(calls)
        if status != "ready":
            raise RuntimeError(f"{self.function.key}: init failed: {detail} (see {self.log_path})")
        self._ready = True

    def invoke(self, event: Any) -> tuple[bool, Any]:
        """Synchronous invoke: (True, result) or (False, error text)."""
        with self._lock:
            self.wait_ready()
            self._conn.send((event, self.function.name))
            try:
                status, detail, seconds, calls = self._conn.recv()
            except (EOFError, ConnectionError):  # the environment died mid-invocation: Lambda starts a new one
                self._process.join(5)
                self.crashes += 1
                status, detail, seconds = "error", f"Runtime.ExitError: exit code {self._process.exitcode}", 0.0
                calls = {}  # what it called before it died is not known (a crash is a fault run's, not a cost)
                self._start()
            self.stats.calls.update(calls)
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


class LambdaFunction:
    """One function of the templates: execution environments started as concurrent invocations need them.

    As Lambda scales a function: an invocation that finds every environment busy gets a new one (a cold
    start), up to the function's reserved concurrency (the template's ReservedConcurrentExecutions; 1 when
    it reserves none); past that, it waits for one to be free (locally that is a wait, not a throttle
    error: our callers, SQS polling and async invokes, would retry it anyway). The first environment is
    used whenever it is free, so a light load stays on one warm environment, and it alone carries the
    injected faults (`--fault` counts them per function, not per environment).
    """

    def __init__(
        self, function: Function, endpoint: str, log_dir: Path, faults: WorkerFaults | None = None,
        secret_key: str = "simulation", local_cap: int | None = None,
    ) -> None:  # fmt: skip
        self.function = function
        reserved = max(1, function.reserved_concurrency or 1)
        self.limit = reserved if local_cap is None else max(1, min(reserved, local_cap))
        self._endpoint, self._log_dir, self._secret_key = endpoint, log_dir, secret_key
        self._environments = [LambdaWorker(function, endpoint, log_dir, faults, secret_key)]
        self._idle = list(self._environments)
        self._free = threading.Condition()

    @property
    def environments(self) -> int:
        return len(self._environments)

    @property
    def stats(self) -> InvokeStats:
        total = InvokeStats()
        for worker in self._environments:
            total.invocations += worker.stats.invocations
            total.errors += worker.stats.errors
            total.seconds += worker.stats.seconds
            total.calls.update(worker.stats.calls)
        return total

    @property
    def crashes(self) -> int:
        return sum(w.crashes for w in self._environments)

    @property
    def pid(self) -> int | None:
        """The first environment's process (the one a light load runs on)."""
        return self._environments[0].pid

    def wait_ready(self, timeout: float = 120.0) -> None:
        self._environments[0].wait_ready(timeout)

    def _acquire(self) -> LambdaWorker:
        with self._free:
            while True:
                if self._idle:
                    return self._idle.pop(0)  # kept in start order: the first environment first
                if len(self._environments) < self.limit:
                    worker = LambdaWorker(self.function, self._endpoint, self._log_dir, None, self._secret_key)
                    self._environments.append(worker)
                    return worker
                self._free.wait()

    def _release(self, worker: LambdaWorker) -> None:
        with self._free:
            self._idle.append(worker)
            self._idle.sort(key=self._environments.index)
            self._free.notify()

    def invoke(self, event: Any) -> tuple[bool, Any]:
        """Synchronous invoke on a free environment: (True, result) or (False, error text)."""
        worker = self._acquire()
        try:
            return worker.invoke(event)
        finally:
            self._release(worker)

    def stop(self) -> None:
        for worker in self._environments:
            worker.stop()
