"""What a classifier's scores output means: probabilities as they are, or logits to be softmaxed."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

PROBABILITY_TOLERANCE = 1e-3  # rows that sum to 1 within this, none below 0: probabilities already


def softmax(scores: NDArray[Any]) -> NDArray[np.float32]:
    shifted = np.asarray(scores, dtype=np.float64) - np.max(scores, axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)


def are_probabilities(scores: NDArray[Any]) -> bool:
    """Whether every row is a probability distribution (so no softmax is due)."""
    values = np.asarray(scores, dtype=np.float64)
    return bool(
        (values >= -PROBABILITY_TOLERANCE).all() and np.allclose(values.sum(axis=1), 1, atol=PROBABILITY_TOLERANCE)
    )
