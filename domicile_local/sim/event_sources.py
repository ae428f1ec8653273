"""Lambda's SQS event source, run locally: poll the queue, invoke with a batch, delete what succeeded.

As Lambda's poller does for an `AWS::Lambda::EventSourceMapping`: up to `BatchSize` messages per
invocation, gathered for up to `MaximumBatchingWindowInSeconds` (0 by default: whatever is there;
Lambda's "Lambda parameters for Amazon SQS event source mappings" page), the records in the shape Lambda
delivers, and with `ReportBatchItemFailures` only the
records the function did not name as failed are deleted; the others come back after the queue's
visibility timeout (and reach the DLQ after `maxReceiveCount`). Contract tests:
tests/unit/test_sqs_poller.py. Like Lambda's pollers it long-polls ("Lambda polls the queue ... using
long polling"), but for LONG_POLL_S rather than 20 s, so that a stop is prompt. Not followed: the
6 MB payload limit of a batch (this app's messages are envelopes of 5 KB at most, 100 a batch).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domicile_local.sim.assembly import ACCOUNT
from domicile_local.sim.faults import FaultInjector
from domicile_local.sim.workers import LambdaFunction

SQS_MAX_RECEIVE = 10  # ReceiveMessage's MaxNumberOfMessages limit
LONG_POLL_S = 1  # ReceiveMessage's WaitTimeSeconds on an empty queue: moto answers as soon as a message comes
WINDOW_POLL_S = 0.05  # inside a batching window shorter than a second, the queue is asked again after this long


class InFlight:
    """Work handed on but not finished (batches being invoked, rule messages queued): 0 when drained."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, delta: int) -> None:
        with self._lock:
            self.count += delta


@dataclass(frozen=True)
class Delivery:
    """What every poller and rules engine of a run shares: the in-flight count and the fault injector."""

    inflight: InFlight
    injector: FaultInjector


@dataclass(frozen=True)
class SourceQueue:
    url: str  # on the local endpoint
    arn: str  # as the mapping names it (the records' eventSourceARN)
    region: str


def queue_url(arn_or_url: str, aws_url: str) -> str:
    """A queue's URL on the local endpoint, from its ARN (or a URL, kept)."""
    name = arn_or_url.rsplit(":", 1)[-1]
    return name if name.startswith("http") else f"{aws_url}/{ACCOUNT}/{name}"


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A record in the shape Lambda's SQS event source delivers."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class SqsPoller:
    """One event source mapping: its queue, batch size and function."""

    def __init__(
        self, sqs: Any, source: SourceQueue, batch_size: int, worker: LambdaFunction, *, delivery: Delivery,
        on_delivered: Callable[[str], None] | None = None, window_s: float = 0.0,
    ) -> None:  # fmt: skip
        self.sqs, self.url, self.queue_arn, self.region = sqs, source.url, source.arn, source.region
        self.batch_size, self.worker, self.on_delivered, self.window_s = batch_size, worker, on_delivered, window_s
        self.injector, self.inflight = delivery.injector, delivery.inflight
        # What Lambda's poller calls on the function's behalf (billed to the queue, not made by our code).
        self.calls: Counter[str] = Counter()

    def _receive(self) -> list[dict[str, Any]]:
        """A batch: up to the batch size, gathered for up to the batching window once a first message came."""
        messages: list[dict[str, Any]] = []
        closes = None  # when the window that the first message opened closes
        while len(messages) < self.batch_size:
            left = LONG_POLL_S if closes is None else int(closes - time.monotonic())  # whole seconds, as SQS takes
            self.calls["sqs.ReceiveMessage"] += 1
            got = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=min(SQS_MAX_RECEIVE, self.batch_size - len(messages)),
                AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=max(0, min(20, left)),
            ).get("Messages", [])  # fmt: skip
            messages += got
            if messages and closes is None:
                closes = time.monotonic() + self.window_s
            if not messages or closes is None or time.monotonic() >= closes:
                break
            if not got and left <= 0:
                time.sleep(min(WINDOW_POLL_S, max(0.0, closes - time.monotonic())))  # the window is still open
        return messages

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        records = [sqs_record(m, self.queue_arn, self.region) for m in messages]
        ok, result = self.worker.invoke({"Records": records})
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])} if ok else None
        done = [m for m in messages if failed is not None and m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_RECEIVE):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(done[start : start + SQS_MAX_RECEIVE])]  # fmt: skip
            self.calls["sqs.DeleteMessageBatch"] += 1
            self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
        if self.on_delivered:
            for message in done:
                self.on_delivered(message["Body"])

    def run(self, stop: threading.Event) -> None:
        held: list[dict[str, Any]] = []  # held back from the last batch (--fault reorder)
        while not stop.is_set():
            messages = self._receive()  # an empty queue made it wait up to LONG_POLL_S
            if not messages and not held:
                continue
            self.inflight.add(+1)
            try:
                messages = self.injector.disorder(self.sqs, self.url, messages, held)
                if messages:
                    self._deliver(messages)
            finally:
                self.inflight.add(-1)
