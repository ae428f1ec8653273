"""SQS batches of escalation envelopes: bad records fail alone, good ones share one vectorized run.

Answers go to the results queue as result envelopes; a record whose answer SQS refused is
reported as failed too, so SQS redelivers it (the answer's id is stable, so no double count).
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
from domicile.wire.envelope import EscalateEnvelope, parse_envelope
from functions.inference.shared import logger, metrics, set_dimensions, tracer, warm_runtime
from functions.residency_gate import hold_if_foreign

settings = load_settings(SqsBatchSettings)
set_dimensions(settings)
runtime = warm_runtime(settings)
tracer.patch(["botocore"])
sqs = boto3.client("sqs", region_name=settings.aws_region)
s3 = boto3.client("s3", region_name=settings.aws_region)
quarantine = Quarantine(s3, settings.quarantine_bucket, ResidencyPolicy.from_settings(settings))
# A batch where every record is bad is answered like any other: each record named as failed.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
sink = SqsEnvelopeSink(sqs, settings.results_queue_url)


class _Group:
    """The good records of one invocation for one cloud model, collected for one vectorized run."""

    def __init__(self) -> None:
        self.record_ids: list[str] = []
        self.requests: list[EscalateEnvelope] = []
        self.cases: list[NDArray[Any]] = []  # each request's case, validated for the model's input


class _Batch:
    """One invocation's good records, by the cloud model their fleet's escalations go to."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}


def collect(batch: _Batch, record: SQSRecord) -> None:
    try:
        envelope = parse_envelope(record.body)
        if not isinstance(envelope, EscalateEnvelope):
            raise InputError("kind", f"the inference queue takes 'escalate' envelopes, not {envelope.kind!r}")
        model = runtime.entry(settings.cloud_model_for(envelope.fleet))
        case = escalation_case(envelope, model)  # shape, dtype and range: a bad record fails alone
    except InputError as err:
        _reject(record.message_id, err)
        raise
    if hold_if_foreign(envelope, record.body, f"sqs:{record.event_source_arn}", quarantine, metrics, logger):
        return  # the record succeeds: kept in this region, never processed
    group = batch.groups.setdefault(model.name, _Group())
    group.record_ids.append(record.message_id)
    group.requests.append(envelope)
    group.cases.append(case)


def _reject(message_id: str, err: InputError) -> None:
    metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
    logger.warning("failed record", extra={"message_id": message_id, "field": err.field, "reason": err.reason})


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
        metrics.add_metric(
            name="InferenceLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1e3
        )
        metrics.add_metric(name="Inferences", unit=MetricUnit.Count, value=len(answers))
        unsent = sink.send(list(zip(group.record_ids, answers, strict=True)))
        if unsent:
            logger.error("results queue refused answers; their records will be retried", extra={"records": unsent})
        failed.extend(unsent)
    if failed:
        failures = list(response.get("batchItemFailures", []))
        failures.extend({"itemIdentifier": record_id} for record_id in failed)
        response["batchItemFailures"] = failures
    return response
