"""SQS batches of escalation and split envelopes: bad records fail alone, good ones share vectorized runs.

The request queue is the queued cloud path (a fleet's `cloud_path = "queued"`): the IoT rule sends each
escalation and split case there, and one invocation answers up to its batch size, one ORT run per
cloud model and one for the split tail. Answers go to the results queue as result envelopes; a record
whose answer SQS refused is reported as failed too, so SQS redelivers it (the answer's id is stable,
so no double count).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import boto3
import numpy as np
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from numpy.typing import NDArray

from domicile.aws.quarantine import Quarantine
from domicile.aws.sqs_sink import SqsEnvelopeSink
from domicile.cloud.answers import answer_escalations, escalation_case
from domicile.config.settings import SqsBatchSettings, load_settings
from domicile.errors import InputError
from domicile.residency.policy import ResidencyPolicy
from domicile.split.runtime import SplitTail
from domicile.wire.envelope import EscalateEnvelope, ResultEnvelope, SplitEnvelope, parse_envelope
from functions.inference.shared import logger, metrics, set_dimensions, warm_runtime
from functions.inference.tracing import tracer
from functions.residency_gate import hold_if_foreign

settings = load_settings(SqsBatchSettings)
set_dimensions(settings)
runtime = warm_runtime(settings)
tail = (
    SplitTail(settings.model_dir, settings.split_model, settings.split_cut, settings.intra_op_threads)
    if settings.split_model and settings.split_cut
    else None
)  # where split fleets live: their queued cases are finished here
sqs = boto3.client("sqs", region_name=settings.aws_region)
s3 = boto3.client("s3", region_name=settings.aws_region)
quarantine = Quarantine(s3, settings.quarantine_bucket, ResidencyPolicy.from_settings(settings))
# A batch where every record is bad is answered like any other: each record named as failed.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
sink = SqsEnvelopeSink(sqs, settings.results_queue_url)


class _Group:
    """The good escalations of one invocation for one cloud model, collected for one vectorized run."""

    def __init__(self) -> None:
        self.record_ids: list[str] = []
        self.requests: list[EscalateEnvelope] = []
        self.cases: list[NDArray[Any]] = []  # each request's case, validated for the model's input


class _Batch:
    """One invocation's good records: escalations by the cloud model of their fleet, and split cases."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.split_ids: list[str] = []
        self.splits: list[SplitEnvelope] = []


def collect(batch: _Batch, record: SQSRecord) -> None:
    try:
        envelope = parse_envelope(record.body)
        if isinstance(envelope, EscalateEnvelope):
            model = runtime.entry(settings.cloud_model_for(envelope.fleet))
            case = escalation_case(envelope, model)  # shape, dtype and range: a bad record fails alone
        elif isinstance(envelope, SplitEnvelope):
            if tail is None:
                raise InputError("kind", "no split fleet lives in this region: its queue takes 'escalate' envelopes")
            tail.activation(envelope)  # the head, cut, width and values: a bad record fails alone
        else:
            raise InputError("kind", f"the request queue takes 'escalate' and 'split' envelopes, not {envelope.kind!r}")
    except InputError as err:
        _reject(record.message_id, err)
        raise
    if hold_if_foreign(envelope, record.body, f"sqs:{record.event_source_arn}", quarantine, metrics, logger):
        return  # the record succeeds: kept in this region, never processed
    if isinstance(envelope, SplitEnvelope):
        batch.split_ids.append(record.message_id)
        batch.splits.append(envelope)
        return
    group = batch.groups.setdefault(model.name, _Group())
    group.record_ids.append(record.message_id)
    group.requests.append(envelope)
    group.cases.append(case)


def _reject(message_id: str, err: InputError) -> None:
    metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
    logger.warning("failed record", extra={"message_id": message_id, "field": err.field, "reason": err.reason})


def _send(record_ids: list[str], answers: list[ResultEnvelope], started: float, metric: str) -> list[str]:
    """Record the run and send its answers; the records whose answer SQS refused."""
    metrics.add_metric(
        name="InferenceLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1e3
    )
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=len(answers))
    unsent = sink.send(list(zip(record_ids, answers, strict=True)))
    if unsent:
        logger.error("results queue refused answers; their records will be retried", extra={"records": unsent})
    return unsent


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = _Batch()  # this invocation's, passed along: nothing of it outlives the call
    collect_into = partial(collect, batch)
    response: dict[str, Any] = dict(
        process_partial_response(event=event, record_handler=collect_into, processor=processor, context=context)
    )
    failed: list[str] = []
    # No group: every record was bad or quarantined, and the response already says which.
    for model, group in batch.groups.items():
        started = time.perf_counter()
        answers = answer_escalations(runtime, model, group.requests, np.concatenate(group.cases))
        failed += _send(group.record_ids, answers, started, "Inferences")
    if batch.splits and tail is not None:
        started = time.perf_counter()
        failed += _send(batch.split_ids, tail.answer(batch.splits), started, "SplitTails")
    if failed:
        failures = list(response.get("batchItemFailures", []))
        failures.extend({"itemIdentifier": record_id} for record_id in failed)
        response["batchItemFailures"] = failures
    return response
