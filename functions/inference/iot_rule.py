"""What the entry points behind IoT topic rules share: parse, hold foreign data, answer, send on.

The rule invokes the function asynchronously with the envelope as the event. The answer re-enters
aggregation as a result envelope on the results queue. A bad envelope raises: Lambda retries the
async invocation and then sends it, with the error, to the function's on-failure destination
(an in-region DLQ), so nothing is dropped and nothing leaves the region.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from domicile.aws.quarantine import Quarantine
from domicile.aws.sqs_sink import SqsEnvelopeSink
from domicile.config.settings import AnsweringSettings
from domicile.errors import InputError
from domicile.residency.policy import ResidencyPolicy
from domicile.wire.envelope import EscalateEnvelope, ResultEnvelope, SplitEnvelope, parse_envelope
from functions.inference.shared import logger, metrics, set_dimensions
from functions.inference.tracing import tracer
from functions.residency_gate import hold_if_foreign

E = TypeVar("E", EscalateEnvelope, SplitEnvelope)


class RuleEntryPoint:
    """One topic rule's function: its results sink and quarantine, made once from its settings."""

    def __init__(self, settings: AnsweringSettings) -> None:
        set_dimensions(settings)
        self.sink = SqsEnvelopeSink(boto3.client("sqs", region_name=settings.aws_region), settings.results_queue_url)
        s3 = boto3.client("s3", region_name=settings.aws_region)
        self.quarantine = Quarantine(s3, settings.quarantine_bucket, ResidencyPolicy.from_settings(settings))

    def answer(
        self, event: dict[str, Any], kind: type[E], source: str, answer: Callable[[E], ResultEnvelope], metric: str
    ) -> dict[str, Any]:
        """Handle one envelope of `kind` from a topic rule; returns what was done with it."""
        try:
            envelope = parse_envelope(event)
            if not isinstance(envelope, kind):
                raise InputError("kind", f"{source} takes {kind.model_fields['kind'].default!r} envelopes, "
                                         f"not {envelope.kind!r}")  # fmt: skip
            held = hold_if_foreign(envelope, json.dumps(event), source, self.quarantine, metrics, logger)
            if held:
                return {"request": str(envelope.message_id), "quarantined": held[0], "reason": held[1]}
            result = answer(envelope)
        except InputError as err:
            metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
            logger.warning(f"rejected {source} envelope", extra={"field": err.field, "reason": err.reason})
            raise
        if self.sink.send([(str(envelope.message_id), result)]):
            raise RuntimeError("the results queue refused the answer; Lambda will retry")
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        return {"request": str(envelope.message_id), "result": str(result.message_id),
                "label": result.payload.results[0].label}  # fmt: skip

    def handler(
        self, kind: type[E], source: str, answer: Callable[[E], ResultEnvelope], metric: str
    ) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
        """A Lambda handler for the rule, with Powertools' logging context, tracing and metrics."""

        @logger.inject_lambda_context
        @tracer.capture_lambda_handler
        @metrics.log_metrics
        def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
            return self.answer(event, kind, source, answer, metric)

        return handler
