"""Cloud answers to escalated cases: one vectorized run for a whole batch of requests."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from domicile.errors import InputError
from domicile.models.registry import ModelEntry
from domicile.models.runtime import ModelRuntime
from domicile.models.validation import input_batch
from domicile.wire.envelope import (
    CaseResult,
    EscalateEnvelope,
    ModelRef,
    ResultEnvelope,
    ResultPayload,
    Source,
    SplitEnvelope,
    result_message_id,
)


def escalation_case(envelope: EscalateEnvelope, entry: ModelEntry) -> NDArray[Any]:
    """One escalation's features as a (1, ...) batch of the cloud model's input, or an InputError.

    The features travel flat (row-major); the envelope parser has already refused NaN and infinity.
    """
    return input_batch(envelope.payload.features, entry.input, "payload.features")


def answer_escalations(
    runtime: ModelRuntime[ModelEntry], model: str, requests: list[EscalateEnvelope], batch: NDArray[Any] | None = None
) -> list[ResultEnvelope]:
    """Run the cloud model once over all requests (their cases, if validated already) and wrap each answer."""
    if not requests:
        return []
    entry = runtime.entry(model)
    if batch is None:
        batch = np.concatenate([escalation_case(r, entry) for r in requests])
    if len(batch) != len(requests):
        raise InputError("batch", "one case is needed per request")
    predictions = runtime.run(entry, batch)
    ref = ModelRef(name=entry.name, version=entry.version, sha256=entry.sha256)
    bins = entry.baseline.bins(batch) if entry.baseline else [None] * len(batch)
    return [
        answer_envelope(request, ref, predictions.row(i), "cloud", request.payload.edge is not None, bins[i])
        for i, request in enumerate(requests)
    ]


def answer_envelope(
    request: EscalateEnvelope | SplitEnvelope,
    model: ModelRef,
    answer: dict[str, Any],
    source: Source,
    escalated: bool,
    input_bin: int | None = None,
) -> ResultEnvelope:
    """The cloud's answer to one request, as the result envelope that re-enters aggregation.

    It keeps the request's device, fleet, jurisdiction and home region, and gets a message id derived
    from the request's, so a redelivered request yields the same result id.
    """
    result = CaseResult(
        case_id=request.payload.case_id, label=answer["label"], confidence=answer["confidence"], source=source,
        escalated=escalated, request_message_id=request.message_id, input_bin=input_bin,
    )  # fmt: skip
    return ResultEnvelope(
        message_id=result_message_id(request.message_id), device=request.device, fleet=request.fleet,
        jurisdiction=request.jurisdiction, home_region=request.home_region, model=model,
        payload=ResultPayload.from_results([result]),
    )  # fmt: skip
