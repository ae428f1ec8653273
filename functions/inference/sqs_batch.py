"""SQS batches of escalation envelopes: bad records fail alone, good ones share one vectorized run.

Answers go to the results queue as result envelopes; a record whose answer SQS refused is
reported as failed too, so SQS redelivers it (the answer's id is stable, so no double count).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from domicile.cloud import answer_escalations, escalation_features
from domicile.envelope import EscalateEnvelope, parse_envelope
from domicile.errors import ConfigError, InputError
from domicile.sinks import SqsEnvelopeSink
from functions.inference.shared import logger, metrics, runtime, settings, sqs, tracer

processor = BatchProcessor(event_type=EventType.SQS)
if not settings.results_queue_url:
    raise ConfigError("environment variable RESULTS_QUEUE_URL is not set (needed by the SQS entry point)")
sink = SqsEnvelopeSink(sqs, settings.results_queue_url)
model_entry = runtime.entry(settings.default_model)


class _Batch:
    """The good records of the current invocation, collected for one vectorized run."""

    def __init__(self) -> None:
        self.record_ids: list[str] = []
        self.requests: list[EscalateEnvelope] = []
        self.rows: list[np.ndarray] = []


_batch = _Batch()


def record_handler(record: SQSRecord) -> None:
    try:
        envelope = parse_envelope(record.body)
        if not isinstance(envelope, EscalateEnvelope):
            raise InputError("kind", f"the inference queue takes 'escalate' envelopes, not {envelope.kind!r}")
        row = escalation_features(envelope, model_entry.n_features)
    except InputError as err:
        metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
        logger.warning(
            "failed record", extra={"message_id": record.message_id, "field": err.field, "reason": err.reason}
        )
        raise
    _batch.record_ids.append(record.message_id)
    _batch.requests.append(envelope)
    _batch.rows.append(row)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _batch
    _batch = _Batch()
    response: dict[str, Any] = dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
    if _batch.requests:
        started = time.perf_counter()
        answers = answer_escalations(runtime, model_entry.name, _batch.requests, _batch.rows)
        metrics.add_metric(
            name="InferenceLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1e3
        )
        metrics.add_metric(name="Inferences", unit=MetricUnit.Count, value=len(answers))
        unsent = sink.send(list(zip(_batch.record_ids, answers, strict=True)))
        if unsent:
            logger.error("results queue refused answers; their records will be retried", extra={"records": unsent})
        failures = list(response.get("batchItemFailures", []))
        failures.extend({"itemIdentifier": record_id} for record_id in unsent)
        response["batchItemFailures"] = failures
    return response
