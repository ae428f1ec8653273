"""What `--fault` injects into the delivery of queue and rule messages (the books must balance all the same).

Standard SQS queues promise neither order nor a single delivery, and IoT Core's rules engine may
deliver a message twice: the injector makes both happen on purpose, from the run's seed.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

HOLD_BACK_P = 0.3  # --fault reorder: the chance a batch keeps its second half back a round
STARVE_PROCESSES = 2  # --fault cpu-starve: as many busy processes as this machine class has cores
STARVE_MAX_S = 900.0  # and never longer than this, even if the run that started them hangs


@dataclass(frozen=True)
class Faults:
    """What `--fault` injects into the local run."""

    write_error_every: int = 0  # one envelope in N: its first aggregate transaction fails (then its retry works)
    aggregate_crashes: int = 0  # the aggregate function dies once a batch is counted, before it answers, N times
    duplicate_every: int = 0  # every Nth queue message and rule message is delivered twice
    reorder: bool = False  # queue batches are delivered shuffled, some messages held back a round
    power_cuts: int = 0  # each fleet's first device loses power this many times, mid-spool-write
    cpu_starve: bool = False  # two busy processes compete for the CPU for the whole run

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


class FaultInjector:
    """Duplicates and disorder for every poller and rules engine of a run, counted for the report."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self.counts: dict[str, int] = {"duplicates_delivered": 0, "held_back": 0, "seen": 0}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def duplicate_now(self) -> bool:
        """Every Nth message (queue or rule) is delivered twice, as at-least-once delivery may."""
        every = self.faults.duplicate_every
        if not every:
            return False
        with self._lock:
            self.counts["seen"] += 1
            if self.counts["seen"] % every:
                return False
            self.counts["duplicates_delivered"] += 1
            return True

    def disorder(
        self, sqs: Any, queue_url: str, messages: list[dict[str, Any]], held: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Shuffle, hold back, send again.

        Held-back messages stay in flight (received once) and go with the poller's next batch, so they
        arrive after messages sent later; a message is held back at most once.
        """
        if self.faults.reorder:
            late, held[:] = list(held), []
            with self._lock:
                self._rng.shuffle(messages)
                if len(messages) > 1 and self._rng.random() < HOLD_BACK_P:
                    held[:] = messages[len(messages) // 2 :]
                    self.counts["held_back"] += len(held)
            messages = messages[: len(messages) - len(held)] + late
        for message in messages:
            if self.duplicate_now():
                sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
        return messages


def _spin(seconds: float, stop: ProcessEvent) -> None:
    """Burn CPU until told to stop or `seconds` pass; touches nothing but the CPU."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        sum(i * i for i in range(20_000))


class CpuStarve:
    """`--fault cpu-starve`: busy processes beside the run, as another job on a shared machine would be."""

    def __init__(self, processes: int = STARVE_PROCESSES, max_s: float = STARVE_MAX_S) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._processes = [
            context.Process(target=_spin, args=(max_s, self._stop), daemon=True, name=f"cpu-starve-{i}")
            for i in range(processes)
        ]

    def start(self) -> None:
        for process in self._processes:
            process.start()

    @property
    def running(self) -> int:
        return sum(p.is_alive() for p in self._processes)

    def stop(self) -> None:
        self._stop.set()
        for process in self._processes:
            if process.pid is not None:
                process.join(5)
                if process.is_alive():
                    process.terminate()
