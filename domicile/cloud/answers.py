"""Cloud answers to escalated cases: one vectorized run for a whole batch of requests."""

from __future__ import annotations

from typing import Any

import numpy as np

from domicile.errors import InputError
from domicile.models.runtime import ModelRuntime
from domicile.models.validation import features_matrix
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


def escalation_features(envelope: EscalateEnvelope, n_features: int) -> np.ndarray:
    """Validate one escalation's features (the row the cloud model will see)."""
    row: np.ndarray = features_matrix(envelope.payload.features, n_features, "payload.features")[0]
    return row


def check_feature_count(envelope: EscalateEnvelope, n_features: int) -> None:
    """The per-record check of a batch; the envelope parser has already refused NaN and infinity."""
    count = len(envelope.payload.features)
    if count != n_features:
        raise InputError("payload.features", f"needs {n_features} features, got {count}")


def stack_rows(requests: list[EscalateEnvelope]) -> tuple[np.ndarray, list[int]]:
    """One float32 matrix for a batch, and the indexes of rows that overflow float32."""
    with np.errstate(over="ignore"):
        matrix = np.asarray([r.payload.features for r in requests], dtype=np.float32)
    overflowing = np.flatnonzero(~np.isfinite(matrix).all(axis=1)).tolist()
    return matrix, overflowing


def answer_escalations(
    runtime: ModelRuntime, model: str, requests: list[EscalateEnvelope], matrix: np.ndarray | None = None
) -> list[ResultEnvelope]:
    """Run the cloud model once over all requests and wrap each answer in a result envelope."""
    if not requests:
        return []
    entry = runtime.entry(model)
    if matrix is None:
        matrix = np.stack([escalation_features(r, entry.n_features) for r in requests])
    if len(matrix) != len(requests):
        raise InputError("matrix", "one feature row is needed per request")
    predictions = runtime.run(entry, matrix)
    ref = ModelRef(name=entry.name, version=entry.version, sha256=entry.sha256)
    bins = entry.baseline.bins(matrix) if entry.baseline else [None] * len(matrix)
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
