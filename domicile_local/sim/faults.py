"""What `--fault` injects into the delivery of queue and rule messages (the books must balance all the same).

Standard SQS queues promise neither order nor a single delivery, and IoT Core's rules engine may
deliver a message twice: the injector makes both happen on purpose, from the run's seed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

HOLD_BACK_P = 0.3  # --fault reorder: the chance a batch keeps its second half back a round


@dataclass(frozen=True)
class Faults:
    """What `--fault` injects into the local run."""

    write_error_every: int = 0  # one envelope in N: its first aggregate transaction fails (then its retry works)
    aggregate_crashes: int = 0  # the aggregate function dies after writing half a batch, this many times
    duplicate_every: int = 0  # every Nth queue message and rule message is delivered twice
    reorder: bool = False  # queue batches are delivered shuffled, some messages held back a round
    power_cuts: int = 0  # each fleet's first device loses power this many times, mid-spool-write

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
