"""Split execution: the deep model cut anywhere equals the whole, and the planner picks the true optimum."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from domicile.config.project import registry_dir
from domicile.errors import ConfigError
from domicile.models.blas import cpu_report
from domicile.models.datasets import load_digits_splits
from domicile.models.registry import load_manifest
from domicile.split.codec import ENCODINGS, decode, encode
from domicile.split.model import CUTS, INPUT, NAME, split_entry, upscale
from domicile.split.partition import Parts, check_equivalence, split_at
from domicile.split.planner import IOT_MAX_PAYLOAD, NETWORKS, Network, choose, options
from domicile.split.profile import ModelProfile, envelope_bytes
from domicile.wire.envelope import Encoding
from tests.conftest import ROOT, run_cli

SPLIT_DIR = registry_dir()

ENTRY, SPEC = split_entry(load_manifest(SPLIT_DIR), NAME)
WHOLE = (SPLIT_DIR / ENTRY.file).read_bytes()
PIXELS = upscale(load_digits_splits(ENTRY.seed or 7).test.x)


def test_committed_files_match_the_manifest():
    assert hashlib.sha256(WHOLE).hexdigest() == ENTRY.sha256
    for key, part in SPEC.parts.items():
        assert hashlib.sha256((SPLIT_DIR / part.file).read_bytes()).hexdigest() == part.sha256, key


@pytest.mark.slow
@pytest.mark.rebuild
def test_same_seed_rebuilds_byte_identical_model(tmp_path):
    done = run_cli("split", "build", "--seed", str(ENTRY.seed), "--out", str(tmp_path))  # a fresh interpreter
    assert done.returncode == 0, done.stdout + done.stderr
    rebuilt, _ = split_entry(load_manifest(tmp_path), NAME)
    assert rebuilt.sha256 == ENTRY.sha256, cpu_report()
    assert rebuilt.metrics == ENTRY.metrics
    assert rebuilt.baseline == ENTRY.baseline


@pytest.mark.parametrize("cut", CUTS)
def test_head_then_tail_equals_the_whole_model_at_every_cut(cut):
    head, tail = split_at(WHOLE, cut)
    assert (head is None) == (cut == INPUT)
    parts = Parts(head, tail)
    activation = parts.activation(PIXELS)
    assert activation.shape == (len(PIXELS), SPEC.cut_widths[cut])
    assert check_equivalence(WHOLE, parts, PIXELS) <= 1e-5


def test_an_unknown_cut_is_refused_naming_the_cuts():
    with pytest.raises(ConfigError, match="cut: unknown tensor 'hidden9'; the cuts are pixels, scaled"):
        split_at(WHOLE, "hidden9")


def test_encodings_round_trip_within_their_precision():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 32)).astype(np.float32)
    for encoding, tolerance in (("float32", 0.0), ("float16", 2e-3), ("int8", None)):
        blob, scale = encode(x, encoding)
        back = decode(blob, encoding, x.shape, scale)
        bound = tolerance if tolerance is not None else (scale or 0) / 2 + 1e-7
        assert np.max(np.abs(back - x)) <= bound, encoding
    assert envelope_bytes(1024, "float32") > envelope_bytes(1024, "float16") > envelope_bytes(1024, "int8")


def _brute_force(profile: ModelProfile, network: Network, df: float, cf: float, sizes, budget: float):
    """Each option's latency summed layer by layer, from scratch; the best feasible one."""
    best = None
    for k, cut in enumerate(profile.cuts):
        for encoding in ENCODINGS:
            size = sizes[(profile.widths[k], encoding)]
            if size > 128 * 1024 or profile.accuracy_loss_pts[(cut, encoding)] > budget:
                continue
            edge = sum(profile.segment_ms[i] for i in range(k)) * df
            cloud = (sum(profile.segment_ms[i] for i in range(k, len(profile.segment_ms))) + profile.label_ms) * cf
            total = edge + size * 8 / (network.bandwidth_mbps * 1e6) * 1e3 + network.rtt_ms / 2 + network.overhead_ms
            total += cloud
            if best is None or total < best - 1e-12:
                best = total
    return best


def _random_profile(rng: np.random.Generator) -> tuple[ModelProfile, dict[tuple[int, Encoding], int]]:
    n = int(rng.integers(2, 8))
    cuts = tuple(f"t{i}" for i in range(n))
    widths = tuple(int(w) for w in rng.integers(1, 60_000, size=n))
    sizes = {
        (w, e): int(w * {"float32": 4, "float16": 2, "int8": 1}[e] * 4 / 3 + 300) for w in widths for e in ENCODINGS
    }
    losses = {(c, e): float(rng.choice([0.0, 0.1, 0.4, 2.0])) for c in cuts for e in ENCODINGS}
    profile = ModelProfile(cuts, tuple(rng.exponential(2.0, size=n - 1)), float(rng.exponential(0.1)), widths,
                           0.97, losses)  # fmt: skip
    return profile, sizes


def test_the_planner_finds_the_brute_force_optimum_on_random_profiles():
    rng = np.random.default_rng(20261124)
    checked = 0
    for _ in range(300):
        profile, sizes = _random_profile(rng)
        network = Network(
            "random", float(rng.uniform(0.1, 1000)), float(rng.uniform(0, 300)), float(rng.uniform(0, 10))
        )
        df, cf, budget = float(rng.uniform(0.5, 500)), float(rng.uniform(0.1, 2)), 0.5
        expected = _brute_force(profile, network, df, cf, sizes, budget)
        candidates = options(profile, network, df, cf, ENCODINGS, budget, sizes)
        if expected is None:
            with pytest.raises(ConfigError, match="no cut fits"):
                choose(candidates)
            continue
        chosen = choose(candidates)
        assert chosen.total_ms == pytest.approx(expected, rel=1e-9)
        assert chosen.bytes <= IOT_MAX_PAYLOAD
        checked += 1
    assert checked > 200


def test_an_activation_over_128_kb_is_never_chosen_even_when_fastest():
    # The middle cut is free to compute around and the network is infinitely fast, but its envelope is too big.
    profile = ModelProfile(("in", "mid", "out"), (50.0, 50.0), 0.0, (10, 200_000, 10), 0.9,
                           {(c, e): 0.0 for c in ("in", "mid", "out") for e in ENCODINGS})  # fmt: skip
    sizes = {(w, e): w * 4 for w in (10, 200_000) for e in ENCODINGS}
    candidates = options(profile, Network("fast", 1e6, 0, 0), device_factor=1, cloud_factor=1, sizes=sizes)
    mid = [o for o in candidates if o.cut == "mid"]
    assert all(not o.feasible and "over IoT Core's 128 KB" in o.why_not for o in mid)
    assert choose(candidates).cut != "mid"


def test_an_encoding_that_costs_too_much_accuracy_is_left_out():
    losses = {(c, e): (3.0 if e == "int8" else 0.0) for c in ("in", "out") for e in ENCODINGS}
    profile = ModelProfile(("in", "out"), (1.0,), 0.0, (5000, 10), 0.9, losses)
    candidates = options(profile, NETWORKS["3g"], 1, 1)
    assert all(o.encoding != "int8" for o in candidates if o.feasible)
    assert "loses 3.00 accuracy points" in next(o.why_not for o in candidates if o.encoding == "int8")


def test_factors_must_be_positive_naming_the_field():
    profile = ModelProfile(
        ("in", "out"), (1.0,), 0.0, (5, 5), 0.9, {(c, e): 0.0 for c in ("in", "out") for e in ENCODINGS}
    )
    with pytest.raises(ConfigError, match="device_factor: a speed factor must be positive, got 0"):
        options(profile, NETWORKS["lan"], 0)


def test_cli_plan_prints_every_cut_and_the_choice():
    result = subprocess.run(
        [sys.executable, "-m", "domicile_local.cli", "split", "plan", "--network", "3g", "--device-factor", "100"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for cut in CUTS:
        assert any(line.startswith(cut + " ") for line in lines), cut
    assert "<- chosen" in result.stdout
    assert lines[-1].startswith("choice: cut at ")
