"""The local run's Lambda functions scale as Lambda does: a new execution environment when every one is busy,
up to the function's reserved concurrency, and a light load stays on the first, warm one."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from domicile_local.sim.assembly import Function
from domicile_local.sim.workers import LambdaFunction

GATE = """
import os, pathlib, time

def handler(event, context):
    pathlib.Path(event["started"]).touch()
    deadline = time.monotonic() + 60
    while not pathlib.Path(event["gate"]).exists():  # held until the test opens the gate
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.01)
    return {"pid": os.getpid()}
"""


def _until(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.02)


def test_busy_environments_make_new_ones_up_to_the_reserved_concurrency(tmp_path: Path) -> None:
    asset = tmp_path / "asset"
    asset.mkdir()
    (asset / "gate.py").write_text(GATE)
    function = Function("stack", "eu-central-1", "Gate", "gate.handler", asset, {}, "gate", 30.0, 2)
    pool = LambdaFunction(function, "http://127.0.0.1:9", tmp_path)
    gate = tmp_path / "open"
    try:
        pool.wait_ready()
        gate.touch()
        pids = {pool.invoke({"gate": str(gate), "started": str(tmp_path / f"s{i}")})[1]["pid"] for i in range(3)}
        assert len(pids) == 1 and pool.environments == 1  # one at a time: the warm environment serves them all
        gate.unlink()
        answers: list[Any] = []
        calls = [threading.Thread(target=lambda i=i: answers.append(pool.invoke(
            {"gate": str(gate), "started": str(tmp_path / f"busy{i}")}))) for i in range(3)]  # fmt: skip
        for call in calls:
            call.start()
        _until(lambda: len(list(tmp_path.glob("busy*"))) == 2, "two invocations running")
        assert pool.environments == 2  # the third waits: the function reserves 2
        gate.touch()
        for call in calls:
            call.join(60)
        assert all(ok for ok, _ in answers) and len(answers) == 3
        assert len({a["pid"] for _, a in answers}) == 2 and pool.stats.invocations == 6
    finally:
        pool.stop()
