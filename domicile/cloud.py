"""Cloud answers to escalated cases: one vectorized run for a whole batch of requests."""

from __future__ import annotations

import numpy as np

from domicile.envelope import (
    CaseResult,
    EscalateEnvelope,
    ModelRef,
    ResultEnvelope,
    ResultPayload,
    result_message_id,
)
from domicile.errors import InputError
from domicile.runtime import ModelRuntime
from domicile.validation import features_matrix


def escalation_features(envelope: EscalateEnvelope, n_features: int) -> np.ndarray:
    """Validate one escalation's features (the row the cloud model will see)."""
    row: np.ndarray = features_matrix(envelope.payload.features, n_features, "payload.features")[0]
    return row


def answer_escalations(
    runtime: ModelRuntime, model: str, requests: list[EscalateEnvelope], rows: list[np.ndarray] | None = None
) -> list[ResultEnvelope]:
    """Run the cloud model once over all requests and wrap each answer in a result envelope.

    The result keeps the request's device, fleet, jurisdiction and home region, and gets a message
    id derived from the request's, so a redelivered request yields the same result id.
    """
    if not requests:
        return []
    entry = runtime.entry(model)
    if rows is None:
        rows = [escalation_features(r, entry.n_features) for r in requests]
    if len(rows) != len(requests):
        raise InputError("rows", "one feature row is needed per request")
    predictions = runtime.run(entry, np.stack(rows))
    ref = ModelRef(name=entry.name, version=entry.version, sha256=entry.sha256)
    answers = []
    for i, request in enumerate(requests):
        answer = predictions.row(i)
        answers.append(
            ResultEnvelope(
                message_id=result_message_id(request.message_id),
                device=request.device,
                fleet=request.fleet,
                jurisdiction=request.jurisdiction,
                home_region=request.home_region,
                model=ref,
                payload=ResultPayload(
                    results=[
                        CaseResult(
                            case_id=request.payload.case_id,
                            label=answer["label"],
                            confidence=answer["confidence"],
                            source="cloud",
                            escalated=request.payload.edge is not None,
                            request_message_id=request.message_id,
                        )
                    ]
                ),
            )
        )
    return answers
