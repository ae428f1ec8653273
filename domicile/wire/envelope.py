"""The message envelope: the unit of idempotency (message_id) and of residency (jurisdiction).

One envelope type per kind, told apart by `kind`:
- `result`: one or more answered cases, packed to save IoT Core 5 KB metering units;
- `escalate`: one case the edge could not answer with confidence (or raw offload), with features;
- `split`: one case's head activations for the cloud to finish (split execution).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from domicile.errors import InputError

SCHEMA_VERSION = 1
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"

# Result envelopes made from a request get a uuid5 of the request's id in this namespace, so a
# redelivered request produces the same result id and downstream idempotency holds.
RESULT_NAMESPACE = uuid.UUID("5d0a9b7e-3c1f-4a7e-9f43-64a1c0d1e2f3")
# One-case envelopes (escalate, split) of a device reading a durable input get a uuid5 of the
# device, kind and case id, so a case sent again after the device restarts is deduplicated.
CASE_NAMESPACE = uuid.UUID("0c6f3e52-8b1d-4f0a-a7c9-2e5d9b4f6a81")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=32)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class EdgeGuess(_Strict):
    label: str
    confidence: float = Field(ge=0, le=1)


class CaseResult(_Strict):
    """One answered case (the row view of a result payload)."""

    case_id: str = Field(pattern=ID_PATTERN)
    label: str
    confidence: float = Field(ge=0, le=1)
    source: Literal["edge", "cloud", "split"]
    escalated: bool = False
    latency_ms: float | None = Field(default=None, ge=0)
    request_message_id: uuid.UUID | None = None
    input_bin: int | None = Field(default=None, ge=0, le=63)  # the case's drift bin (see domicile.models.drift)


Source = Literal["edge", "cloud", "split"]
_MAX_CASES = 2000


class ResultPayload(_Strict):
    """Answered cases in columns: ~20 bytes a case instead of ~90 as JSON objects.

    IoT Core bills 5 KB units, so the packed form is what makes edge answers cheap to send.
    All cases of one payload share `source` and `escalated`.
    """

    source: Source
    escalated: bool = False
    case_ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(min_length=1, max_length=_MAX_CASES)
    labels: list[str] = Field(min_length=1, max_length=_MAX_CASES)
    confidence: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=1, max_length=_MAX_CASES)
    latency_ms: list[Annotated[float, Field(ge=0)]] | None = None
    request_message_ids: list[uuid.UUID] | None = None  # cloud answers: the escalations they answer
    input_bins: list[Annotated[int, Field(ge=0, le=63)]] | None = None  # drift bin of each case's input

    @model_validator(mode="after")
    def _same_lengths(self) -> ResultPayload:
        n = len(self.case_ids)
        for name in ("labels", "confidence", "latency_ms", "request_message_ids", "input_bins"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise ValueError(f"{name} has {len(column)} entries for {n} case_ids")
        return self

    @property
    def results(self) -> list[CaseResult]:
        return [
            CaseResult(
                case_id=case_id,
                label=self.labels[i],
                confidence=self.confidence[i],
                source=self.source,
                escalated=self.escalated,
                latency_ms=self.latency_ms[i] if self.latency_ms is not None else None,
                request_message_id=self.request_message_ids[i] if self.request_message_ids is not None else None,
                input_bin=self.input_bins[i] if self.input_bins is not None else None,
            )
            for i, case_id in enumerate(self.case_ids)
        ]

    @classmethod
    def from_results(cls, results: list[CaseResult]) -> ResultPayload:
        if not results:
            raise ValueError("a result payload needs at least one result")
        first = results[0]
        if any(r.source != first.source or r.escalated != first.escalated for r in results):
            raise ValueError("all results of one payload share source and escalated")
        return cls(
            source=first.source,
            escalated=first.escalated,
            case_ids=[r.case_id for r in results],
            labels=[r.label for r in results],
            confidence=[r.confidence for r in results],
            latency_ms=[r.latency_ms for r in results] if all(r.latency_ms is not None for r in results) else None,
            request_message_ids=(
                [r.request_message_id for r in results] if all(r.request_message_id for r in results) else None
            ),
            input_bins=(
                [r.input_bin for r in results if r.input_bin is not None]
                if all(r.input_bin is not None for r in results)
                else None
            ),
        )


class EscalatePayload(_Strict):
    case_id: str = Field(pattern=ID_PATTERN)
    # Whole numbers stay ints on the wire (shorter); NaN and infinity are refused while parsing.
    # One case of the model's input, flat (row-major); IoT Core's 128 KB payload limit bounds it anyway.
    features: list[StrictInt | Annotated[float, Field(allow_inf_nan=False)]] = Field(min_length=1, max_length=16384)
    edge: EdgeGuess | None = None  # None when the fleet offloads raw features (cloud-only)


Encoding = Literal["float32", "float16", "int8"]  # how a split activation travels


class SplitPayload(_Strict):
    case_id: str = Field(pattern=ID_PATTERN)
    tensor: str = Field(min_length=1, max_length=64)
    shape: list[int] = Field(min_length=1, max_length=4)
    dtype: Encoding
    data_b64: str = Field(max_length=128 * 1024)  # IoT Core's payload limit bounds it anyway
    scale: float | None = None  # int8 quantization scale


class _EnvelopeBase(_Strict):
    schema_version: Literal[1] = 1
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    device: str = Field(pattern=ID_PATTERN)
    fleet: str = Field(pattern=ID_PATTERN)
    jurisdiction: str = Field(pattern=ID_PATTERN)
    home_region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    model: ModelRef
    produced_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))


class ResultEnvelope(_EnvelopeBase):
    kind: Literal["result"] = "result"
    payload: ResultPayload


class EscalateEnvelope(_EnvelopeBase):
    kind: Literal["escalate"] = "escalate"
    payload: EscalatePayload


class SplitEnvelope(_EnvelopeBase):
    kind: Literal["split"] = "split"
    payload: SplitPayload


Envelope = Annotated[ResultEnvelope | EscalateEnvelope | SplitEnvelope, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Envelope] = TypeAdapter(Envelope)


def _first_error(exc: ValidationError) -> InputError:
    first = exc.errors()[0]
    # Drop the union tag pydantic puts in the path ("escalate"), keep the field path.
    loc = [str(p) for p in first["loc"] if p not in ("result", "escalate", "split")]
    return InputError(".".join(loc) or "envelope", first["msg"])


def parse_envelope(raw: str | bytes | dict[str, Any]) -> Envelope:
    """Parse JSON text or a dict into an envelope; any problem is an InputError naming the field."""
    try:
        if isinstance(raw, dict):
            return _ADAPTER.validate_python(raw)
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise _first_error(exc) from exc


def result_message_id(request_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(RESULT_NAMESPACE, str(request_id))


def case_message_id(device: str, kind: str, case_id: str) -> uuid.UUID:
    return uuid.uuid5(CASE_NAMESPACE, f"{device}/{kind}/{case_id}")
