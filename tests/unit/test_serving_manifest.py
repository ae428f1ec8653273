"""The HTTP function's pydantic-free reading of the manifest against the registry's own schema."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from domicile.errors import ConfigError
from domicile.models.registry import Manifest, load_manifest
from domicile.models.serving import read_serving_manifest
from domicile.models.views import EntryView, StagesView, TensorView
from tests.conftest import MODELS


def _members(protocol: type) -> list[str]:
    return sorted(n for n in vars(protocol) if not n.startswith("_"))


def _assert_same(served: Any, full: Manifest) -> None:
    assert {n: sorted(v) for n, v in served.versions.items()} == {n: sorted(v) for n, v in full.versions.items()}
    assert sorted(served.served) == sorted(full.served)
    for name, by_version in full.versions.items():
        for version, entry in by_version.items():
            light = served.versions[name][version]
            for member in _members(EntryView):
                if member != "input":
                    assert getattr(light, member) == getattr(entry, member), (name, version, member)
            for member in _members(TensorView):
                assert getattr(light.input, member) == getattr(entry.input, member), (name, version, member)
    for name, stages in full.stages.items():
        for member in _members(StagesView):
            assert getattr(served.stages[name], member) == getattr(stages, member), (name, member)
    for name, entry in full.served.items():
        assert served.served[name].version == entry.version


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy2(MODELS / "manifest.json", folder / "manifest.json")
    return folder


def _edit(folder: Path, change: Any) -> None:
    raw = json.loads((folder / "manifest.json").read_text())
    change(raw)
    (folder / "manifest.json").write_text(json.dumps(raw))


def test_the_committed_registry_reads_the_same_both_ways() -> None:
    _assert_same(read_serving_manifest(MODELS), load_manifest(MODELS))


def test_a_canary_and_a_history_read_the_same_both_ways(tmp_path: Path) -> None:
    folder = _copy(tmp_path)

    def add_versions(raw: dict[str, Any]) -> None:
        for version in ("1.1.0", "0.9.0"):
            entry = dict(raw["versions"]["digits-cloud"]["1.0.0"], version=version)
            raw["versions"]["digits-cloud"][version] = entry
        raw["stages"]["digits-cloud"].update(canary="1.1.0", history=["0.9.0"])

    _edit(folder, add_versions)
    served, full = read_serving_manifest(folder), load_manifest(folder)
    _assert_same(served, full)
    assert served.served["digits-cloud"].version == "1.1.0"  # what a deployment serves: the canary


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda raw: raw["versions"]["digits-cloud"]["1.0.0"].pop("sha256"),
            "versions.digits-cloud.1.0.0: no 'sha256'",
        ),
        (lambda raw: raw["versions"]["digits-edge"]["1.0.0"]["input"].pop("dtype"), "1.0.0.input: no 'dtype'"),
        (lambda raw: raw.pop("stages"), "no 'stages'"),
        (lambda raw: raw["stages"]["digits-cloud"].update(live="7.0.0"), "version 7.0.0 is not in versions"),
    ],
)
def test_what_a_server_needs_and_lacks_is_named(tmp_path: Path, change: Any, message: str) -> None:
    folder = _copy(tmp_path)
    _edit(folder, change)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        read_serving_manifest(folder)


def test_a_missing_or_broken_manifest_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_serving_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        read_serving_manifest(tmp_path)
