"""Escalations from IoT Core: the `escalate` topic rule invokes this with the envelope as the event.

The cloud model answers; the answer re-enters aggregation as a result envelope (source "cloud",
escalated) on the results queue. A bad envelope raises: Lambda retries the async invocation and
then sends it, with the error, to the function's on-failure destination (an in-region DLQ).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from domicile.cloud import answer_escalations
from domicile.envelope import EscalateEnvelope, parse_envelope
from domicile.errors import ConfigError, InputError
from domicile.residency import Quarantine
from domicile.sinks import SqsEnvelopeSink
from functions.inference.shared import logger, metrics, residency, runtime, settings, tracer
from functions.residency_gate import hold_if_foreign

tracer.patch(["botocore"])
if not settings.results_queue_url:
    raise ConfigError("environment variable RESULTS_QUEUE_URL is not set (needed by the escalation entry point)")
if not settings.quarantine_bucket:
    raise ConfigError("environment variable QUARANTINE_BUCKET is not set (needed to keep residency violations)")
sink = SqsEnvelopeSink(boto3.client("sqs", region_name=settings.aws_region), settings.results_queue_url)
quarantine = Quarantine(boto3.client("s3", region_name=settings.aws_region), settings.quarantine_bucket, residency)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        envelope = parse_envelope(event)
        if not isinstance(envelope, EscalateEnvelope):
            raise InputError("kind", f"escalations must be 'escalate' envelopes, not {envelope.kind!r}")
    except InputError as err:
        metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
        logger.warning("rejected escalation", extra={"field": err.field, "reason": err.reason})
        raise
    held = hold_if_foreign(envelope, json.dumps(event), "iot:escalate", quarantine, metrics, logger)
    if held:
        return {"request": str(envelope.message_id), "quarantined": held[0], "reason": held[1]}
    (answer,) = answer_escalations(runtime, settings.default_model, [envelope])
    if sink.send([(str(envelope.message_id), answer)]):
        raise RuntimeError("the results queue refused the answer; Lambda will retry")
    metrics.add_metric(name="Escalations", unit=MetricUnit.Count, value=1)
    return {
        "request": str(envelope.message_id),
        "result": str(answer.message_id),
        "label": answer.payload.results[0].label,
    }
