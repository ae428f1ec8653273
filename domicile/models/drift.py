"""Input drift: the population stability index (PSI) of what a fleet sees against what the model learnt.

The statistic is each case's mean grey level (one number a case, cheap on a device). The baseline
cuts the training split's values into ten bins of equal share (deciles), so every bin expects
10%. A result envelope carries each case's bin; the aggregate function sums them per fleet,
model and hour and computes

    PSI = sum over bins of (actual% - expected%) * ln(actual% / expected%)

Rule of thumb (and the default alarm): below 0.1 stable, 0.1-0.2 moderate, above 0.2 drift.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

BINS = 10
DRIFT_THRESHOLD = 0.2
# PSI of a small sample is noise (about (BINS - 1) / n for a stable input): no verdict below this.
MIN_CASES = 200
_EPSILON = 1e-4  # an empty bin counts as this share, so ln() stays finite


def statistic(x: np.ndarray) -> np.ndarray:
    """Each case's mean grey level."""
    return np.asarray(np.asarray(x, dtype=np.float64).reshape(len(x), -1).mean(axis=1))


class InputBaseline(BaseModel):
    """The training split's distribution of the statistic: inner bin edges and each bin's share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistic: str = "mean grey level"
    edges: tuple[float, ...] = Field(min_length=1)  # BINS - 1 inner edges, ascending
    expected: tuple[float, ...] = Field(min_length=2)

    @classmethod
    def from_training(cls, x: np.ndarray) -> InputBaseline:
        values = statistic(x)
        edges = np.quantile(values, np.arange(1, BINS) / BINS)
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=BINS)
        return cls(edges=tuple(round(float(e), 6) for e in edges),
                   expected=tuple(round(float(c) / len(values), 6) for c in counts))  # fmt: skip

    def bins(self, x: np.ndarray) -> list[int]:
        """The bin of each case (0 .. BINS - 1)."""
        return [int(b) for b in np.searchsorted(np.asarray(self.edges), statistic(x), side="right")]


def psi(actual_counts: Sequence[float] | np.ndarray, expected: Sequence[float]) -> float:
    """Population stability index of observed bin counts against the expected shares."""
    total = float(sum(actual_counts))
    if total <= 0:
        return 0.0
    value = 0.0
    for count, share in zip(actual_counts, expected, strict=True):
        a = max(count / total, _EPSILON)
        e = max(share, _EPSILON)
        value += (a - e) * math.log(a / e)
    return value


@dataclass(frozen=True)
class DriftVerdict:
    fleet: str
    model: str  # name@version
    hour: str
    cases: int
    psi: float


HistogramKey = tuple[str, str, str]  # (fleet, model as name@version, hour)


class DriftWatch:
    """The (fleet, model, hour) histograms one batch of results added to, and their PSI afterwards.

    `baselines` are the registry's, by `name@version`; `histograms(keys, bins)` reads the histograms as
    the store holds them, all in one read, once every result of the batch is counted.
    """

    def __init__(
        self,
        baselines: Mapping[str, InputBaseline],
        histograms: Callable[[Sequence[HistogramKey], int], dict[HistogramKey, list[int]]],
    ) -> None:
        self.baselines = baselines
        self.histograms = histograms
        self._touched: set[HistogramKey] = set()

    def note(self, fleet: str, model: str, hour: str) -> None:
        """A result with input bins was counted for this fleet, model and hour."""
        if model in self.baselines:
            self._touched.add((fleet, model, hour))

    def verdicts(self) -> list[DriftVerdict]:
        """PSI of each touched histogram with enough cases for a verdict."""
        if not self._touched:
            return []
        touched = sorted(self._touched)
        # One read for all of them; bins beyond a model's own count are absent and read as zeros.
        counts_of = self.histograms(touched, max(len(self.baselines[m].expected) for _, m, _ in touched))
        out = []
        for key in touched:
            fleet, model, hour = key
            expected = self.baselines[model].expected
            counts = counts_of[key][: len(expected)]
            if sum(counts) >= MIN_CASES:  # fewer cases give noise, not a verdict
                out.append(DriftVerdict(fleet, model, hour, sum(counts), round(psi(counts, expected), 4)))
        return out
