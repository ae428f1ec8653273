import hashlib
import os
import platform
import subprocess
import sys
import warnings

import numpy as np
import pytest

from domicile.errors import ConfigError
from domicile.models.blas import NUMPY_TARGETS_OFF, check_numpy_kernels, cpu_report, numpy_features
from domicile.models.datasets import load_digits_splits
from domicile.models.registry import load_manifest
from domicile.models.runtime import ModelRuntime
from tests.conftest import MODELS, run_cli

warnings.filterwarnings("ignore", category=FutureWarning)


def test_committed_manifest_matches_committed_files():
    manifest = load_manifest(MODELS)
    # One registry for every role: the split model's entry holds its parts.
    assert {name: e.role for name, e in manifest.models.items()} == {
        "digits-edge": "edge", "digits-cloud": "cloud", "digits-deep": "split"
    }  # fmt: skip
    for entry in manifest.models.values():
        blob = (MODELS / entry.file).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry.sha256
        assert len(blob) == entry.size_bytes
        assert entry.input.shape == ((-1, 1024) if entry.split else (-1, 64))
        assert entry.class_labels == tuple(str(d) for d in range(10))
        assert set(entry.allowed_jurisdictions) == {"eu", "us"}


def test_cloud_model_is_more_accurate_and_edge_model_is_smaller():
    manifest = load_manifest(MODELS)
    edge, cloud = manifest.models["digits-edge"], manifest.models["digits-cloud"]
    assert cloud.metrics.test_accuracy is not None and edge.metrics.test_accuracy is not None
    assert cloud.metrics.test_accuracy > edge.metrics.test_accuracy >= 0.95
    assert edge.size_bytes * 10 < cloud.size_bytes


def test_recorded_accuracy_is_what_the_model_scores_on_the_test_split():
    runtime = ModelRuntime(MODELS)
    test = load_digits_splits().test
    for entry in runtime.manifest.served.values():
        predictions = runtime.predict(entry.name, test.x)
        assert float(np.mean(predictions.labels == test.y)) == pytest.approx(entry.metrics.test_accuracy, abs=1e-6)


@pytest.mark.rebuild
def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    # Each build in a fresh interpreter, as `make rebuild-models` runs it: what other tests loaded never counts.
    for folder, seed in (("a", 7), ("b", 7), ("c", 8)):
        done = run_cli("models", "build", "--seed", str(seed), "--out", str(tmp_path / folder))
        assert done.returncode == 0, done.stdout + done.stderr
    first, second, other = (load_manifest(tmp_path / folder) for folder in "abc")
    for name, entry in first.models.items():
        assert (tmp_path / "a" / entry.file).read_bytes() == (tmp_path / "b" / entry.file).read_bytes(), cpu_report()
        assert second.models[name].sha256 == entry.sha256, cpu_report()
        assert other.models[name].sha256 != entry.sha256
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    # ... and the committed models are what this seed builds (one BLAS thread: any machine, the same bytes).
    committed = load_manifest(MODELS)
    assert set(first.versions) == {"digits-edge", "digits-cloud"}
    for name, versions in first.versions.items():
        assert versions == committed.versions[name] and first.stages[name] == committed.stages[name]


@pytest.mark.rebuild
def test_a_build_under_any_hash_seed_writes_the_registrys_bytes(tmp_path):
    """skl2onnx orders opset imports by set iteration: PYTHONHASHSEED=53 once exported other cloud bytes."""

    env = {**os.environ, "PYTHONHASHSEED": "53"}
    done = run_cli("models", "build", "--seed", "7", "--out", str(tmp_path / "r"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    built, committed = load_manifest(tmp_path / "r"), load_manifest(MODELS)
    for name, entry in built.models.items():
        assert entry.sha256 == committed.versions[name][entry.version].sha256, name


def test_a_build_called_in_process_without_the_hash_seed_is_refused(monkeypatch, tmp_path):
    from domicile_local.cli import main

    monkeypatch.setenv("PYTHONHASHSEED", "random")
    assert main(["models", "build", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_splits_are_disjoint_and_stratified():
    splits = load_digits_splits()
    sizes = [len(s.y) for s in (splits.train, splits.validation, splits.test)]
    assert sum(sizes) == 1797
    assert sizes[0] == pytest.approx(0.6 * 1797, abs=2)
    for part in (splits.validation, splits.test):
        assert set(np.unique(part.y)) == set(range(10))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="pinned on x86-64 only")
def test_a_build_on_other_blas_kernels_is_refused_rather_than_giving_other_bytes(tmp_path):
    # Nehalem's kernels run on every x86-64 CPU; the seed alone would give other bytes on them.
    env = {**os.environ, "OPENBLAS_CORETYPE": "Nehalem"}
    result = subprocess.run(
        [sys.executable, "-m", "domicile_local.cli", "models", "build", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "OPENBLAS_CORETYPE: OpenBLAS runs its Nehalem kernels here" in result.stderr
    assert not list(tmp_path.glob("*.onnx"))


def test_the_tests_run_numpy_without_its_avx512_loops():
    # conftest pins the kernels before numpy loads, as the domicile command does.
    assert os.environ["NPY_DISABLE_CPU_FEATURES"].split() == list(NUMPY_TARGETS_OFF)
    assert not any(numpy_features().get(name) for name in NUMPY_TARGETS_OFF)


def test_a_build_on_numpy_avx512_loops_is_refused_naming_the_variable():
    # An AVX-512 CPU with numpy's dispatch left on rounds exp and log otherwise than the registry's build.
    with pytest.raises(ConfigError, match=r"NPY_DISABLE_CPU_FEATURES: numpy runs its X86_V4 loops here.*='X86_V4 "):
        check_numpy_kernels({"AVX2": True, "X86_V4": True})
    check_numpy_kernels({"AVX2": True, "X86_V4": False})
