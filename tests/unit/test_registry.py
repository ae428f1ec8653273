"""The model registry: versions, stages, promotion checks and rollback."""

from __future__ import annotations

import copy
import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from domicile.config.project import topology_file
from domicile.config.topology import load_topology, parse_topology
from domicile.errors import ConfigError, ModelIntegrityError
from domicile.models.build import build_all
from domicile.models.lifecycle import Stage, listing, promote, rollback
from domicile.models.registry import load_manifest
from domicile.models.runtime import ModelRuntime
from tests.conftest import MODELS

TOPOLOGY = load_topology()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed registry plus version 1.1.0 of every model (seed 8), not promoted."""
    folder = tmp_path_factory.mktemp("registry")
    for path in MODELS.glob("*"):
        if path.is_file():
            shutil.copy2(path, folder / path.name)
    build_all(folder, seed=8, topology=TOPOLOGY, version="1.1.0")
    return folder


@pytest.fixture
def registry(built: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(built, folder)
    return folder


def test_a_new_version_is_added_beside_the_live_one_and_not_promoted(registry):
    manifest = load_manifest(registry)
    assert sorted(manifest.versions["digits-cloud"]) == ["1.0.0", "1.1.0"]
    assert manifest.stages["digits-cloud"].live == "1.0.0" and manifest.models["digits-cloud"].version == "1.0.0"
    new = manifest.versions["digits-cloud"]["1.1.0"]
    assert new.sha256 != manifest.versions["digits-cloud"]["1.0.0"].sha256 and (registry / new.file).exists()
    assert new.baseline is not None and new.seed == 8
    assert listing(manifest)[1][:3] == ("digits-cloud", "1.1.0", "not promoted")


def test_canary_then_all_then_rollback(registry):
    promote(registry, "digits-cloud", "1.1.0", Stage.CANARY, TOPOLOGY)
    manifest = load_manifest(registry)
    assert (manifest.stages["digits-cloud"].live, manifest.stages["digits-cloud"].canary) == ("1.0.0", "1.1.0")
    # what a deployment built now serves: the canary (the runtime loads it, hash-checked)
    assert ModelRuntime(registry).entry("digits-cloud").version == "1.1.0"
    promote(registry, "digits-cloud", "1.1.0", Stage.ALL, TOPOLOGY)
    stages = load_manifest(registry).stages["digits-cloud"]
    assert (stages.live, stages.canary, stages.history) == ("1.1.0", None, ("1.0.0",))
    _, said = rollback(registry, "digits-cloud")
    assert "from 1.1.0 to 1.0.0" in said and load_manifest(registry).stages["digits-cloud"].live == "1.0.0"
    with pytest.raises(ConfigError, match="nothing to roll back to"):
        rollback(registry, "digits-cloud")


def test_rollback_withdraws_a_canary_first(registry):
    promote(registry, "digits-edge", "1.1.0", Stage.CANARY, TOPOLOGY)
    _, said = rollback(registry, "digits-edge")
    assert "canary 1.1.0 withdrawn" in said
    stages = load_manifest(registry).stages["digits-edge"]
    assert (stages.live, stages.canary) == ("1.0.0", None)


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("digits-huge", "1.0.0", "models.digits-huge: no such model; known: digits-cloud, digits-edge"),
        ("digits-cloud", "9.9.9", "models.digits-cloud: no version 9.9.9; known: 1.0.0, 1.1.0"),
        ("digits-cloud", "1.0.0", "1.0.0 is already live; a canary must be another version"),
    ],
)
def test_promotion_errors_name_the_model_and_version(registry, name, version, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        promote(registry, name, version, Stage.CANARY, TOPOLOGY)
    with pytest.raises(ConfigError, match="no such model"):
        rollback(registry, "digits-huge")


def test_a_file_that_does_not_hash_to_the_registry_is_never_promoted(registry):
    entry = load_manifest(registry).versions["digits-cloud"]["1.1.0"]
    (registry / entry.file).write_bytes((registry / entry.file).read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="refusing to promote"):
        promote(registry, "digits-cloud", "1.1.0", Stage.ALL, TOPOLOGY)
    assert load_manifest(registry).stages["digits-cloud"].live == "1.0.0"  # nothing written


def test_a_model_not_allowed_where_the_topology_runs_it_is_never_promoted(registry, tmp_path):
    doc = tomllib.loads(topology_file().read_text())
    eu_only = copy.deepcopy(doc)
    eu_only["models"]["digits-cloud"]["jurisdictions"] = ["eu"]
    del eu_only["fleets"]["virginia-plant"]
    build_all(registry, seed=9, topology=parse_topology(eu_only), version="1.2.0")  # built for the EU only
    with pytest.raises(ConfigError, match=r"digits-cloud 1\.2\.0: not allowed in jurisdiction 'us'"):
        promote(registry, "digits-cloud", "1.2.0", Stage.CANARY, TOPOLOGY)


def test_versions_are_immutable(registry):
    with pytest.raises(ConfigError, match=r"digits-edge 1\.0\.0 already exists with sha256 .*new --version"):
        build_all(registry, seed=9, topology=TOPOLOGY)
    released = load_manifest(registry).versions["digits-edge"]["1.0.0"]
    assert (registry / released.file).read_bytes() == (MODELS / released.file).read_bytes()  # untouched


def test_a_registry_whose_stages_name_a_missing_version_is_refused(registry):
    doc = json.loads((registry / "manifest.json").read_text())
    doc["stages"]["digits-edge"]["live"] = "7.0.0"
    (registry / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"stages\.digits-edge: version 7\.0\.0 is not in versions\.digits-edge"):
        load_manifest(registry)


def _device(registry: Path, tmp_path: Path) -> Any:
    from domicile.config.topology import FleetMode
    from domicile.edge.device import EdgeDevice, EdgeModel
    from domicile.edge.forward import StoreAndForward
    from domicile.edge.spool import Spool
    from domicile.wire.topics import DeviceIdentity

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[tuple[str, bytes]] = []

        def publish(self, topic: str, payload: bytes) -> None:
            self.sent.append((topic, payload))

        def close(self) -> None:
            pass

    identity = DeviceIdentity("munich-line-0", "munich-line", "eu", "eu-central-1")
    return EdgeDevice(identity, FleetMode.EDGE_ONLY, StoreAndForward(Recorder(), Spool(tmp_path / "spool")),
                      EdgeModel(ModelRuntime(registry), "digits-edge"))  # fmt: skip


def test_a_device_that_cannot_load_the_new_model_keeps_serving_the_previous_one_and_says_so(registry, tmp_path):
    from domicile.models.datasets import load_digits_splits
    from domicile.wire.envelope import parse_envelope

    promote(registry, "digits-edge", "1.1.0", Stage.CANARY, TOPOLOGY)
    assert _device(registry, tmp_path / "a").model_ref.version == "1.1.0"  # the canary loads: it serves
    new = load_manifest(registry).versions["digits-edge"]["1.1.0"]
    (registry / new.file).write_bytes((registry / new.file).read_bytes()[:-8])  # a truncated download
    device = _device(registry, tmp_path / "b")
    assert device.model_ref.version == "1.0.0"
    assert device.model_fallback.startswith("digits-edge 1.1.0 failed to load (ModelIntegrityError")
    assert device.model_fallback.endswith("serving 1.0.0")
    assert device.stats.as_dict()["model_fallback"] == device.model_fallback
    device.infer(["c0"], load_digits_splits().test.x[:1])
    device.close()
    (_, payload) = device.forward.transport.sent[-1]
    assert parse_envelope(payload).model.version == "1.0.0"  # the cloud sees which version answered


def test_a_device_with_no_loadable_version_fails_at_start(registry, tmp_path):
    promote(registry, "digits-edge", "1.1.0", Stage.CANARY, TOPOLOGY)
    manifest = load_manifest(registry)
    for version in ("1.0.0", "1.1.0"):
        (registry / manifest.versions["digits-edge"][version].file).write_bytes(b"not a model")
    with pytest.raises(ModelIntegrityError, match=r"digits-edge 1\.1\.0 failed to load and no earlier version loads"):
        _device(registry, tmp_path)


def test_the_edge_model_component_ships_the_previous_version_for_that_fallback(registry):
    from infra.constructs.edge_fleet import ModelArtifacts

    promote(registry, "digits-edge", "1.1.0", Stage.CANARY, TOPOLOGY)
    manifest = load_manifest(registry)
    files = ModelArtifacts.edge(manifest.models["digits-edge"], registry).files
    assert [f.name for f in files] == ["digits-edge-1.1.0.onnx", "digits-edge-1.0.0.onnx", "manifest.json"]
    assert [f.name for f in ModelArtifacts.edge(manifest.versions["digits-edge"]["1.0.0"], MODELS).files] == [
        "digits-edge-1.0.0.onnx", "manifest.json"]  # fmt: skip
