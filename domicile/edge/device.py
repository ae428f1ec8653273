"""One device's inference loop: run the edge model, keep or escalate, pack, publish.

Modes (from the topology):
- edge-only: every answer stays on the edge and is packed into result envelopes;
- cloud-only: no local inference, each case's raw features go up as an escalation;
- hybrid: answers at or above the model's escalation threshold stay; the rest escalate at once;
- split: the device runs the split model's head and sends each case's activation at the cut for
  the tail in the home region to finish.

A device reading a durable input (a file, a sensor log) passes each case's position to `infer`.
Every message then carries the input cursor (the first position whose output is not yet durable:
the oldest case still waiting in the packer, or the next one), and its one-case envelopes get ids
derived from the case, so after a crash the device resumes at `spool.resume_point()`: what it
sends again either was never sent or has the same message id, which the cloud deduplicates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domicile.config.topology import FleetMode
from domicile.edge.forward import StoreAndForward
from domicile.edge.packer import PackingLimits, ResultPacker
from domicile.errors import ConfigError
from domicile.models.registry import ModelEntry
from domicile.models.runtime import ModelRuntime
from domicile.models.validation import input_batch
from domicile.split.runtime import SplitHead
from domicile.wire.envelope import (
    CaseResult,
    EdgeGuess,
    EscalateEnvelope,
    EscalatePayload,
    ModelRef,
    ResultEnvelope,
    ResultPayload,
    SplitEnvelope,
    SplitPayload,
    case_message_id,
)
from domicile.wire.keys import model_key
from domicile.wire.topics import DeviceIdentity


@dataclass
class DeviceStats:
    inferences: int = 0
    kept: int = 0
    escalated: int = 0
    split: int = 0
    envelopes: int = 0
    bytes_sent: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    rejected: int = 0  # bad input cases refused with their field and reason (see domicile.edge.inputs)
    model: str = ""  # name@version actually serving
    model_fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_fallback": self.model_fallback,
            "inferences": self.inferences,
            "kept": self.kept,
            "escalated": self.escalated,
            "split": self.split,
            "envelopes": self.envelopes,
            "bytes_sent": self.bytes_sent,
            "rejected": self.rejected,
        }


def compact_features(case: np.ndarray) -> list[float]:
    """One case's values, flat (row-major), as JSON numbers; whole numbers stay short (digits pixels are 0..16)."""
    return [int(v) if float(v).is_integer() else float(v) for v in case.ravel().tolist()]


@dataclass(frozen=True)
class EdgeModel:
    """The model an edge-only, hybrid or cloud-only device answers (or, cloud-only, describes) its cases with."""

    runtime: ModelRuntime[ModelEntry]
    name: str
    threshold: float | None = None  # escalate below this confidence; None: the registry's threshold


class EdgeDevice:
    def __init__(
        self,
        identity: DeviceIdentity,
        mode: FleetMode,
        forward: StoreAndForward,
        model: EdgeModel | SplitHead,  # a split fleet's device runs the split model's head
        *,
        packing: PackingLimits = PackingLimits(),  # noqa: B008  (frozen: one shared default is safe)
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.mode = mode
        self.forward = forward
        self.split = model if isinstance(model, SplitHead) else None
        self.threshold = 0.0
        self.model_fallback: str | None = None  # what went wrong with the deployed model, if anything
        if (mode is FleetMode.SPLIT) != isinstance(model, SplitHead):
            needs = "the split model's head" if mode is FleetMode.SPLIT else "the edge model's runtime"
            raise ConfigError(f"fleets.{identity.fleet}.mode: {mode.value} needs {needs} on the device")
        if isinstance(model, SplitHead):
            self.model_ref, self.input = model.model_ref, model.input
        else:
            self.runtime = model.runtime
            if mode is not FleetMode.CLOUD_ONLY:
                # Hash-check and load now: a bad model fails at start, not mid-stream; a device keeps
                # serving the previous version when the new one will not load, and says so.
                self.model_fallback = model.runtime.load_or_fall_back(model.name)
            self.entry = model.runtime.entry(model.name)
            self.input = self.entry.input  # what a case must look like: shape and dtype
            threshold = model.threshold
            if threshold is None:
                threshold = self.entry.escalation.threshold if self.entry.escalation else 0.0
            self.threshold = threshold
            self.model_ref = ModelRef(name=self.entry.name, version=self.entry.version, sha256=self.entry.sha256)
        self.packer = ResultPacker(self._result_envelope, packing.max_bytes, packing.max_delay_s, clock)
        self.stats = DeviceStats(model=model_key(self.model_ref.name, self.model_ref.version),
                                 model_fallback=self.model_fallback)  # fmt: skip
        self._lock = threading.Lock()
        self._next_position: int | None = None  # input positions, when the caller gives them
        self._packed_from: int | None = None  # position of the oldest case waiting in the packer

    def _cursor(self) -> int | None:
        """The first input position whose output is not yet durable (None: the input has no positions)."""
        return self._packed_from if self._packed_from is not None else self._next_position

    def _case_id_header(self, kind: str, case_id: str) -> dict[str, Any]:
        """A one-case envelope's id: derived from the case when the input can be replayed, else random."""
        if self._next_position is None:
            return {}
        return {"message_id": case_message_id(self.identity.device, kind, case_id)}

    def _header(self) -> dict[str, Any]:
        """Who sent an envelope and with which model: the same for every kind."""
        identity = self.identity
        return {"device": identity.device, "fleet": identity.fleet, "jurisdiction": identity.jurisdiction,
                "home_region": identity.home_region, "model": self.model_ref}  # fmt: skip

    def _result_envelope(self, results: list[CaseResult]) -> ResultEnvelope:
        return ResultEnvelope(
            **self._header(),
            payload=ResultPayload.from_results(results),
        )

    def escalation_envelope(self, case_id: str, row: np.ndarray, guess: EdgeGuess | None) -> EscalateEnvelope:
        """One case sent up as it is: raw features, and the edge model's guess in hybrid mode."""
        return EscalateEnvelope(
            **self._header(),
            **self._case_id_header("escalate", case_id),
            payload=EscalatePayload(case_id=case_id, features=compact_features(row), edge=guess),
        )

    def _split_envelope(self, payload: SplitPayload) -> SplitEnvelope:
        """One case's activation at the cut, for the tail in the home region (one case: no waiting)."""
        return SplitEnvelope(
            **self._header(),
            **self._case_id_header("split", payload.case_id),
            payload=payload,
        )

    def _send(self, kind: str, blob: bytes) -> None:
        self.forward.send(self.identity.topic(kind), blob, self._cursor())
        self.stats.envelopes += 1
        self.stats.bytes_sent += len(blob)
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1

    def infer(
        self, case_ids: Sequence[str], features: Any, positions: Sequence[int] | None = None
    ) -> list[dict[str, Any]]:
        """Handle a batch of cases in one model run; returns what was decided for each.

        `positions`: each case's place in a durable input, for resuming it after a crash.
        """
        matrix = input_batch(features, self.input, "features")
        if len(case_ids) != len(matrix) or (positions is not None and len(positions) != len(matrix)):
            raise ValueError(f"{len(case_ids)} case ids and {len(positions or [])} positions for {len(matrix)} rows")
        decisions: list[dict[str, Any]] = []

        def reached(i: int) -> None:  # case i is being handed off: the input moves past it
            if positions is not None:
                self._next_position = positions[i] + 1

        with self._lock:
            self.stats.inferences += len(matrix)
            if self.split is not None and self.mode is FleetMode.SPLIT:
                activations = self.split.activations(matrix)
                for i, payload in enumerate(self.split.payloads(case_ids, activations)):
                    reached(i)
                    self._send("split", self._split_envelope(payload).model_dump_json(exclude_none=True).encode())
                    decisions.append({"case_id": payload.case_id, "escalated": False, "split": True})
                self.stats.split += len(matrix)
                return decisions
            if self.mode is FleetMode.CLOUD_ONLY:
                for i, (case_id, row) in enumerate(zip(case_ids, matrix, strict=True)):
                    reached(i)
                    self._send(
                        "escalate",
                        self.escalation_envelope(case_id, row, None).model_dump_json(exclude_none=True).encode(),
                    )
                    decisions.append({"case_id": case_id, "escalated": True})
                self.stats.escalated += len(matrix)
                return decisions
            started = time.perf_counter()
            predictions = self.runtime.run(self.entry, matrix)
            latency_ms = round((time.perf_counter() - started) * 1000 / len(matrix), 3)
            confidence = predictions.confidence
            baseline = self.entry.baseline
            bins = baseline.bins(matrix) if baseline else [None] * len(matrix)  # for drift, in the cloud
            for i, case_id in enumerate(case_ids):
                answer = predictions.row(i)
                reached(i)
                if self.mode is FleetMode.HYBRID and confidence[i] < self.threshold:
                    guess = EdgeGuess(label=answer["label"], confidence=answer["confidence"])
                    blob = (
                        self.escalation_envelope(case_id, matrix[i], guess).model_dump_json(exclude_none=True).encode()
                    )
                    self._send("escalate", blob)  # one case, at once: the cloud answer should not wait
                    self.stats.escalated += 1
                    decisions.append({"case_id": case_id, "escalated": True, **answer})
                    continue
                result = CaseResult(
                    case_id=case_id, label=answer["label"], confidence=answer["confidence"], source="edge",
                    latency_ms=latency_ms, input_bin=bins[i],
                )  # fmt: skip
                blobs = self.packer.add(result)
                if positions is not None and len(self.packer) == 1:
                    self._packed_from = positions[i]  # the packer was empty or just sent the rest
                for blob in blobs:
                    self._send("result", blob)
                self.stats.kept += 1
                decisions.append({"case_id": case_id, "escalated": False, **answer})
        return decisions

    def tick(self) -> None:
        """Called periodically: send a result envelope whose latency bound is up; replay the spool."""
        with self._lock:
            self._send_packed(self.packer.due())
        self.forward.replay()

    def close(self) -> None:
        with self._lock:
            self._send_packed(self.packer.flush())
        self.forward.replay()

    def _send_packed(self, blobs: list[bytes]) -> None:
        """The packer's whole content, sent: no case waits in it any more."""
        if blobs:
            self._packed_from = None
        for blob in blobs:
            self._send("result", blob)
