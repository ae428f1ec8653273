"""Issue #19's proof: real sensor data (BasicMotions), a user's own script and models, added and simulated.

Everything goes through the commands a user types: the example's training script, `models add`,
`topology check`, and `simulate` on the example's topology, with one fleet on data of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "basic-motions"
LABELS = "badminton,running,standing,walking"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "domicile_local.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)  # fmt: skip


def test_the_basic_motions_models_register_and_run_end_to_end_on_their_own_data(tmp_path: Path) -> None:
    work = tmp_path / "motion"
    env = {**os.environ, "DOMICILE_MODELS": str(work / "models")}  # a registry of its own, empty at first
    trained = subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "--out", str(work)], capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    for name, role in (("motion-edge", "edge"), ("motion-cloud", "cloud")):
        added = _cli("models", "add", str(work / f"{name}.onnx"), "--name", name, "--version", "1.0.0", "--role", role,
                     "--validation", str(work / "validation.npz"), "--labels", LABELS, env=env)  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert f"{name} 1.0.0 ({role}): input 'window' [-1, 6, 100] float32" in added.stdout
    split = _cli("models", "add", str(work / "motion-cloud.onnx"), "--name", "motion-split", "--version", "1.0.0",
                 "--role", "split", "--validation", str(work / "validation.npz"), "--labels", LABELS,
                 env=env)  # fmt: skip
    assert split.returncode == 0, split.stderr
    cut = _cli("split", "partition", "--model", "motion-split", "--cut", "features", env=env)
    assert cut.returncode == 0, cut.stderr
    assert "head then tail equals the whole model on its validation data (to 1e-5) at cut features" in cut.stdout
    registry = json.loads((work / "models" / "manifest.json").read_text())  # the store itself
    assert set(registry["versions"]["motion-split"]["1.0.0"]["split"]["parts"]) == {"features/head", "features/tail"}
    assert registry["versions"]["motion-edge"]["1.0.0"]["scores"] == "logits"
    assert registry["versions"]["motion-cloud"]["1.0.0"]["label_output"] == "label"
    assert registry["versions"]["motion-cloud"]["1.0.0"]["metrics"]["validation_accuracy"] >= 0.9
    topology = str(EXAMPLE / "domicile.toml")
    assert _cli("topology", "check", "--file", topology, env=env).returncode == 0
    # track-wearables streams the training windows (its own recordings); the others the validation data.
    with np.load(work / "validation.npz") as validation:
        assert validation["x"].shape == (40, 6, 100)
    from sktime.datasets import load_basic_motions

    x, y = load_basic_motions(split="train", return_type="numpy3D")
    np.savez(work / "track.npz", x=x.astype(np.float32), y=np.asarray(y).astype(str))
    out = tmp_path / "run"
    ran = _cli("simulate", "--topology", topology, "--records", "40", "--data", f"track-wearables={work / 'track.npz'}",
               "--no-progress", "--out", str(out), env=env)  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "Books balance: published 240 = aggregated 240 + quarantined 0 + in DLQ 0." in ran.stdout
    fleets = {f["fleet"]: f for f in json.loads((out / "report.json").read_text())["fleets"]}
    assert fleets["track-wearables"]["escalated"] == 80 and fleets["court-sensors"]["escalated"] == 0
    assert fleets["lab-bench"]["split"] == 40  # each case's 24 statistics, finished by the tail in the cloud
    assert all(f["accuracy"] >= 0.85 for f in fleets.values()), {k: f["accuracy"] for k, f in fleets.items()}
