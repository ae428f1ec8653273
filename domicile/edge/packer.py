"""Pack confident results into as few IoT Core metering units as latency allows.

IoT Core bills messages in 5 KB units, and one result adds about 30 bytes to a columnar envelope, so
results share an envelope until the next one would push it past `max_bytes` or the oldest has waited
`max_delay_s`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from domicile.wire.envelope import CaseResult, ResultEnvelope

IOT_METERING_UNIT = 5 * 1024


@dataclass(frozen=True)
class PackingLimits:
    """When a packed result envelope goes: at `max_bytes`, or once its oldest result waited `max_delay_s`."""

    max_bytes: int = IOT_METERING_UNIT
    max_delay_s: float = 1.0


def envelope_bytes(envelope: ResultEnvelope) -> bytes:
    return envelope.model_dump_json(exclude_none=True).encode()


class ResultPacker:
    def __init__(
        self,
        make_envelope: Callable[[list[CaseResult]], ResultEnvelope],
        max_bytes: int = IOT_METERING_UNIT,
        max_delay_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.make_envelope = make_envelope
        self.max_bytes = max_bytes
        self.max_delay_s = max_delay_s
        self.clock = clock
        self._results: list[CaseResult] = []
        self._size = 0
        self._since = 0.0

    def __len__(self) -> int:
        return len(self._results)

    def add(self, result: CaseResult) -> list[bytes]:
        """Queue a result; returns the envelope(s) that became full, serialized."""
        out: list[bytes] = []
        # What one more case adds to the columns: its id, label, confidence, latency and drift bin, with commas.
        columns = (result.case_id, result.label, result.confidence, result.latency_ms, result.input_bin)
        item = sum(len(json.dumps(v)) + 1 for v in columns if v is not None)
        if self._results and self._size + item > self.max_bytes:
            out.extend(self.flush())
        if not self._results:
            self._since = self.clock()
            self._results = [result]
            self._size = len(envelope_bytes(self.make_envelope(self._results)))
        else:
            self._results.append(result)
            self._size += item
        return out

    def due(self) -> list[bytes]:
        """The pending envelope, if its oldest result has waited long enough."""
        if self._results and self.clock() - self._since >= self.max_delay_s:
            return self.flush()
        return []

    def flush(self) -> list[bytes]:
        if not self._results:
            return []
        blob = envelope_bytes(self.make_envelope(self._results))
        self._results, self._size = [], 0
        return [blob]
