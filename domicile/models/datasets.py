"""The digits data set (ships with scikit-learn, no download) and its fixed split.

Train, validation and test are 60/20/20, stratified, from one seed: the model build, the
threshold choice and the simulated devices all see the same held-out rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

DEFAULT_SEED = 7
N_FEATURES = 64  # 8x8 grey-level image, values 0..16
CLASS_LABELS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Split:
    x: NDArray[np.float32]
    y: NDArray[np.int64]


@dataclass(frozen=True)
class DigitsSplits:
    train: Split
    validation: Split
    test: Split
    seed: int

    def fingerprint(self) -> str:
        """sha256 over the training rows and labels: identifies the training data."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.train.x).tobytes())
        digest.update(np.ascontiguousarray(self.train.y).tobytes())
        return digest.hexdigest()


def load_digits_splits(seed: int = DEFAULT_SEED) -> DigitsSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    y = y.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, random_state=seed, stratify=y)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest)
    return DigitsSplits(
        train=Split(x_train, y_train),
        validation=Split(x_val, y_val),
        test=Split(x_test, y_test),
        seed=seed,
    )
