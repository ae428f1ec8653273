"""The model registry: versions, stages, promotion checks and rollback."""

from __future__ import annotations

import copy
import hashlib
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
from tests.conftest import MODELS, run_cli

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
    assert listing(manifest)[1][:4] == ("digits-cloud", "cloud", "1.1.0", "not promoted")


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
        ("digits-huge", "1.0.0", "models.digits-huge: no such model; known: digits-cloud, digits-deep, digits-edge"),
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
    before = (registry / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match=r"digits-edge 1\.0\.0 already exists with sha256 .*new --version"):
        build_all(registry, seed=9, topology=TOPOLOGY)
    assert (registry / "manifest.json").read_bytes() == before  # nothing of the build was registered
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


def _second_split_version(registry: Path) -> str:
    """digits-deep 1.1.0: the same bytes under a new version, registered and not yet cut."""
    from domicile.models.lifecycle import register
    from domicile.models.registry import SplitSpec

    entry = load_manifest(registry).versions["digits-deep"]["1.0.0"]
    assert entry.split is not None
    new = entry.model_copy(
        update={"version": "1.1.0", "file": "digits-deep-1.1.0.onnx",
                "split": SplitSpec(cuts=entry.split.cuts, cut_widths=entry.split.cut_widths)}
    )  # fmt: skip
    register(registry, new, (registry / entry.file).read_bytes())
    return new.version


def test_a_split_model_lives_in_the_one_registry_with_stages_promotion_and_rollback(registry):
    from domicile.split.partition import partition
    from domicile.split.runtime import SplitHead, SplitTail

    version = _second_split_version(registry)
    raw = json.loads((registry / "manifest.json").read_text())  # read the store, not through the code
    assert (
        raw["stages"]["digits-deep"]["live"] == "1.0.0" and raw["versions"]["digits-deep"][version]["role"] == "split"
    )
    # Not cut at the topology's cut yet: promoting it would ship devices a head that does not exist.
    with pytest.raises(ConfigError, match=r"no parts at the topology's cut 'hidden1'; run `domicile split partition "
                       r"--model digits-deep --version 1.1.0 --cut hidden1` first"):  # fmt: skip
        promote(registry, "digits-deep", version, Stage.CANARY, TOPOLOGY)
    partition("hidden1", registry, "digits-deep", version)
    promote(registry, "digits-deep", version, Stage.CANARY, TOPOLOGY)
    assert json.loads((registry / "manifest.json").read_text())["stages"]["digits-deep"]["canary"] == version
    head, tail = SplitHead(registry, "digits-deep", "hidden1", "float16"), SplitTail(registry, "digits-deep", "hidden1")
    assert head.model_ref.version == tail.model_ref.version == version  # what a deployment built now ships
    _, said = rollback(registry, "digits-deep")
    assert "canary 1.1.0 withdrawn" in said
    assert SplitHead(registry, "digits-deep", "hidden1", "float16").model_ref.version == "1.0.0"
    # The cloud runtime serves edge and cloud models by name; a split model only in parts.
    assert set(ModelRuntime(registry).manifest.served) == {"digits-edge", "digits-cloud"}


def test_registering_a_version_again_with_other_bytes_is_refused_and_writes_nothing(registry):
    from domicile.models.lifecycle import register

    before = (registry / "manifest.json").read_bytes()
    entry = load_manifest(registry).versions["digits-edge"]["1.0.0"]
    other = (registry / load_manifest(registry).versions["digits-cloud"]["1.0.0"].file).read_bytes()
    forged = entry.model_copy(update={"sha256": hashlib.sha256(other).hexdigest()})
    with pytest.raises(ConfigError, match=r"models.digits-edge 1.0.0 already exists with sha256 [0-9a-f]{12}; these "
                       r"bytes have [0-9a-f]{12}: versions are immutable, register them as a new version"):  # fmt: skip
        register(registry, forged, other)
    assert (registry / "manifest.json").read_bytes() == before
    assert hashlib.sha256((registry / entry.file).read_bytes()).hexdigest() == entry.sha256


@pytest.mark.parametrize(
    ("role", "split", "message"),
    [("split", None, "split: a split model needs a split section"), ("edge", "spec", "split: a edge model has no")],
)
def test_a_split_section_belongs_to_split_models_only(role, split, message):
    from pydantic import ValidationError

    deep = load_manifest(MODELS).versions["digits-deep"]["1.0.0"]
    data = deep.model_dump() | {"role": role, "split": deep.split.model_dump() if split and deep.split else None}
    with pytest.raises(ValidationError, match=message):
        type(deep).model_validate(data)


def test_models_build_prints_what_it_built_beside_a_split_model(registry):
    # The registry holds digits-deep too; `models build` builds and reports the digits models alone.
    done = run_cli("models", "build", "--seed", "8", "--version", "1.1.0", "--out", str(registry))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["digits-cloud 1.1.0", "digits-edge 1.1.0"]
    assert all(line.endswith("(not promoted)") for line in lines)
