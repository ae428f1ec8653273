"""The local run's SQS event source against what Lambda documents for an SQS event source mapping.

Sources: "Lambda parameters for Amazon SQS event source mappings" (BatchSize, default 10;
MaximumBatchingWindowInSeconds, default 0: invoke with whatever records are there) and the
CreateEventSourceMapping API reference ("The maximum amount of time, in seconds, that Lambda spends
gathering records before invoking the function"; "Lambda passes all of the records in the batch to
the function in a single call"), and "Handling errors for an SQS event source" (with
ReportBatchItemFailures, the records the function names stay on the queue and come back; the rest
are deleted). The function here records what it was invoked with: the thing tested is the poller.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest

from domicile_local.sim.event_sources import Delivery, InFlight, SourceQueue, SqsPoller
from domicile_local.sim.faults import FaultInjector, Faults
from tests.conftest import REGION

QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:work"


class RecordingFunction:
    """Answers every invocation with the partial batch response `fail` asks for, and keeps the batches."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail or set()

    def invoke(self, event: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        bodies = [r["body"] for r in event["Records"]]
        assert all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"] == QUEUE_ARN for r in event["Records"])
        self.batches.append(bodies)
        failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] in self.fail]
        return True, {"batchItemFailures": failures}


@pytest.fixture
def queue(aws: None) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    return str(sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "60"})["QueueUrl"])


def poller(queue: str, function: RecordingFunction, batch_size: int, window_s: float) -> SqsPoller:
    delivery = Delivery(InFlight(), FaultInjector(Faults(), seed=1))
    source = SourceQueue(queue, QUEUE_ARN, REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    return SqsPoller(sqs, source, batch_size, function, delivery=delivery, window_s=window_s)  # type: ignore[arg-type]


def send(queue: str, *bodies: str) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)


def visible(queue: str) -> int:
    sqs = boto3.client("sqs", region_name=REGION)
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def run_once(p: SqsPoller) -> None:
    messages = p._receive()
    if messages:
        p._deliver(messages)


def test_no_window_invokes_with_what_is_there_up_to_ten_a_receive(queue):
    send(queue, *(f"m{i}" for i in range(3)))
    function = RecordingFunction()
    run_once(poller(queue, function, batch_size=100, window_s=0.0))
    assert [sorted(b) for b in function.batches] == [["m0", "m1", "m2"]]


def test_a_window_gathers_up_to_the_batch_size_over_several_receives(queue):
    send(queue, *(f"m{i}" for i in range(25)))
    function = RecordingFunction()
    p = poller(queue, function, batch_size=20, window_s=5.0)
    run_once(p)
    assert len(function.batches) == 1 and len(function.batches[0]) == 20  # one invocation: the batch is full
    assert p.calls["sqs.ReceiveMessage"] >= 2  # ReceiveMessage returns 10 at most
    run_once(p)
    assert len(function.batches[1]) == 5


def test_messages_sent_while_the_window_is_open_join_the_batch(queue):
    send(queue, "first")
    late = threading.Timer(0.3, send, args=(queue, "late-1", "late-2"))
    late.start()
    function = RecordingFunction()
    run_once(poller(queue, function, batch_size=3, window_s=30.0))  # the batch size closes it, not the window
    late.join()
    assert sorted(function.batches[0]) == ["first", "late-1", "late-2"]


def test_only_records_the_function_did_not_name_are_deleted(queue):
    send(queue, "good-1", "bad", "good-2")
    function = RecordingFunction(fail={"bad"})
    run_once(poller(queue, function, batch_size=10, window_s=0.0))
    assert visible(queue) == 1  # the failed one stays (invisible until its visibility timeout), the rest are gone
    sqs = boto3.client("sqs", region_name=REGION)
    assert sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []) == []  # still hidden
