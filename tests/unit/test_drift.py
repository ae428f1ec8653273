"""Input drift: the baseline's bins and the population stability index."""

from __future__ import annotations

import math

import numpy as np
import pytest

from domicile.cloud.aggregation import delta_of
from domicile.models.datasets import load_digits_splits
from domicile.models.drift import BINS, InputBaseline, psi, statistic
from domicile.models.registry import load_manifest
from domicile.wire.envelope import CaseResult, ModelRef, ResultEnvelope, ResultPayload
from domicile_local.sim.devices import drift
from tests.conftest import MODELS

SPLITS = load_digits_splits()


def test_psi_matches_a_hand_computed_value():
    # actual 20/30/50 % against expected 30/30/40 %:
    # (0.2-0.3)ln(0.2/0.3) + 0 + (0.5-0.4)ln(0.5/0.4) = 0.0405465 + 0.0223144 = 0.0628609
    assert psi([20, 30, 50], [0.3, 0.3, 0.4]) == pytest.approx(0.0628609, abs=1e-6)
    assert psi([10, 10, 10], [1 / 3, 1 / 3, 1 / 3]) == pytest.approx(0.0)
    assert psi([0, 0, 0], [0.3, 0.3, 0.4]) == 0.0  # nothing seen: no verdict, not infinity
    empty_bin = psi([0, 50, 50], [0.2, 0.4, 0.4])
    assert math.isfinite(empty_bin) and empty_bin > 0.5  # an empty bin is a strong signal, still finite


def test_the_baseline_is_deciles_of_the_training_inputs():
    baseline = InputBaseline.from_training(SPLITS.train.x)
    assert len(baseline.edges) == BINS - 1 and list(baseline.edges) == sorted(baseline.edges)
    assert sum(baseline.expected) == pytest.approx(1.0, abs=1e-5)
    assert all(0.08 <= share <= 0.12 for share in baseline.expected)  # ties in grey levels keep them near 10%
    assert baseline.bins(np.zeros((2, 64))) == [0, 0] and baseline.bins(np.full((1, 64), 16.0)) == [BINS - 1]
    assert statistic(np.array([[1.0, 3.0], [2.0, 2.0]])).tolist() == [2.0, 2.0]


def test_held_out_digits_are_stable_and_a_fading_sensor_is_drift():
    baseline = load_manifest(MODELS).models["digits-edge"].baseline
    assert baseline is not None  # every built model records its baseline

    def psi_of(x):
        return psi(np.bincount(baseline.bins(x), minlength=BINS), baseline.expected)

    assert psi_of(SPLITS.test.x) < 0.1
    assert psi_of(drift(SPLITS.test.x)) > 1.0
    half = np.vstack([SPLITS.test.x[:180], drift(SPLITS.test.x[180:])])
    assert psi_of(half) > 0.2


def test_result_envelopes_carry_each_cases_bin_to_the_aggregate_delta():
    results = [CaseResult(case_id=f"c{i}", label="3", confidence=0.9, source="edge", input_bin=b)
               for i, b in enumerate([0, 0, 9, 4])]  # fmt: skip
    envelope = ResultEnvelope(device="d-0", fleet="f", jurisdiction="eu", home_region="eu-central-1",
                              model=ModelRef(name="digits-edge", version="1.0.0", sha256="0" * 64),
                              payload=ResultPayload.from_results(results))  # fmt: skip
    assert envelope.payload.input_bins == [0, 0, 9, 4]
    delta = delta_of(envelope)
    assert delta.input_bins == {0: 2, 9: 1, 4: 1} and delta.drift_pk == "drift#f#digits-edge@1.0.0"
    without = ResultPayload.from_results([r.model_copy(update={"input_bin": None}) for r in results])
    assert without.input_bins is None
