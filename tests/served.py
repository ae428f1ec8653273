"""`domicile serve` in a subprocess, on a free loopback port, for tests with real OIP clients.

Readiness: uvicorn's "running on http://host:PORT" line gives the port (started with --port 0),
then `GET /v2/health/ready` answers 200 once a worker has loaded its sessions. Each wait has a
deadline; `stop()` sends one SIGINT, as Ctrl-C does, and returns what the server printed.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from domicile_local.serve import wait_ready
from tests.conftest import ROOT

RUNNING = re.compile(r"running on http://([\d.]+):(\d+)")
START_DEADLINE_S = 120.0  # two workers each import onnxruntime and load every session, on a busy machine


@dataclass
class Served:
    workers: int = 2
    models: Path | None = None
    program: list[str] = field(default_factory=lambda: [sys.executable, "-m", "domicile_local.cli"])
    cwd: Path = ROOT
    env: dict[str, str] | None = None  # None: this process's
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    url: str = ""
    _port_seen: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        command = [*self.program, "serve", "--port", "0", "--workers", str(self.workers)]
        if self.models is not None:
            command += ["--models", str(self.models)]
        self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        started = time.monotonic()
        if not self._port_seen.wait(START_DEADLINE_S):
            self.stop()
            raise TimeoutError(f"domicile serve printed no address in {START_DEADLINE_S:.0f} s:\n{self.output}")
        try:
            wait_ready(self.url, self.proc, START_DEADLINE_S - (time.monotonic() - started))
        except (RuntimeError, TimeoutError) as err:
            self.stop()
            raise type(err)(f"{err}:\n{self.output}") from err

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = RUNNING.search(line)
            if match and not self._port_seen.is_set():
                self.url = f"http://{match.group(1)}:{match.group(2)}"
                self._port_seen.set()

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, deadline_s: float = 30.0) -> int:
        """Ctrl-C: one SIGINT, then the exit code within the deadline (killed past it)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
