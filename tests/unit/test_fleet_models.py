"""Per-fleet models: the topology names each fleet's edge and cloud model, and the registry must serve the pair."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from domicile.config.project import topology_file
from domicile.config.topology import parse_topology
from domicile.errors import ConfigError
from domicile.models.placement import check_topology
from domicile.models.registry import load_manifest
from tests.conftest import MODELS
from tests.user_models import user_registry

BASE = tomllib.loads(topology_file().read_text())


def topology(models: dict[str, Any] | None = None, **fleet: object) -> dict[str, Any]:
    """The suite's topology with more models, and munich-line's table updated with `fleet`."""
    data = {key: dict(value) for key, value in BASE.items()}
    data["models"] = {**BASE["models"], **(models or {})}
    data["fleets"] = {**BASE["fleets"], "munich-line": {**BASE["fleets"]["munich-line"], **fleet}}
    return data


WINDOWS = {
    "windows": {"role": "edge", "jurisdictions": ["eu"]},
    "windows-cloud": {"role": "cloud", "jurisdictions": ["eu"]},
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed registry plus a user's edge and cloud model of another rank: [N, 3, 8] windows."""
    return user_registry(tmp_path_factory.mktemp("reg") / "models", tmp_path_factory.mktemp("byom"))


def test_a_fleet_takes_its_own_models_and_the_registry_serves_the_pair(registry):
    data = _every_fleet(topology(WINDOWS), edge_model="digits-edge", cloud_model="digits-cloud")
    data["fleets"]["munich-line"] |= {"edge_model": "windows", "cloud_model": "windows-cloud"}
    topo = parse_topology(data)
    munich, berlin = topo.fleets["munich-line"], topo.fleets["berlin-depot"]
    assert (topo.edge_model_of(munich), topo.cloud_model_of(munich)) == ("windows", "windows-cloud")
    assert (topo.edge_model_of(berlin), topo.cloud_model_of(berlin)) == ("digits-edge", "digits-cloud")
    assert topo.cloud_models_in("eu-central-1")["munich-line"] == "windows-cloud"
    check_topology(topo, load_manifest(registry))


@pytest.mark.parametrize(
    ("fleet", "message"),
    [
        (
            {"edge_model": "digits-cloud"},
            "fleets.munich-line.edge_model: 'digits-cloud' is not a model with role 'edge'",
        ),
        ({"cloud_model": "nope"}, "fleets.munich-line.cloud_model: 'nope' is not a model with role 'cloud'"),
    ],
)
def test_a_fleet_model_of_the_wrong_role_is_refused_naming_the_key(fleet, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_topology(topology(**fleet))


def test_several_models_of_a_role_need_every_fleet_to_name_one():
    with pytest.raises(ConfigError, match=r"fleets\.\S+\.edge_model: several models have role 'edge' \(digits-edge, "
                       r"windows\); name one"):  # fmt: skip
        parse_topology(topology(WINDOWS, edge_model="windows", cloud_model="windows-cloud"))


def test_a_model_placed_outside_the_fleets_jurisdiction_is_refused():
    eu_only = {"windows": {"role": "edge", "jurisdictions": ["eu"]}}
    data = topology(eu_only)
    data["fleets"]["virginia-plant"] = {**BASE["fleets"]["virginia-plant"], "edge_model": "windows"}
    for name in ("munich-line", "berlin-depot", "hamburg-lab"):
        data["fleets"][name] = {**data["fleets"][name], "edge_model": "digits-edge"}
    with pytest.raises(ConfigError, match=r"fleets\.virginia-plant\.edge_model: model 'windows' may not run in "
                       r"jurisdiction 'us' \(allowed: eu\)"):  # fmt: skip
        parse_topology(data)


def _every_fleet(data: dict[str, Any], **models: str) -> dict[str, Any]:
    fleets = data["fleets"]
    for name in fleets:
        fleets[name] = {**fleets[name], **models}
    return data


def test_the_registry_must_serve_the_pair_with_one_input_and_one_label_set(registry):
    us_allowed = {k: {**v, "jurisdictions": ["eu", "us"]} for k, v in WINDOWS.items()}
    with pytest.raises(ConfigError, match=r"cloud_model: digits-cloud takes \[-1, 64\] float32, but the edge model "
                       r"windows takes \[-1, 3, 8\] float32; an escalated case must fit both"):  # fmt: skip
        check_topology(parse_topology(_every_fleet(topology(us_allowed), edge_model="windows",
                                                   cloud_model="digits-cloud")), load_manifest(registry))  # fmt: skip
    paired = parse_topology(_every_fleet(topology(us_allowed), edge_model="windows", cloud_model="windows-cloud"))
    with pytest.raises(ConfigError, match=r"fleets\.virginia-plant\.edge_model: the registry allows windows 1\.0\.0 "
                       r"only in eu, not 'us'"):  # fmt: skip
        check_topology(paired, load_manifest(registry))


def test_a_model_the_registry_does_not_have_is_named(registry):
    data = topology({"ghost": {"role": "cloud", "jurisdictions": ["eu", "us"]}})
    with pytest.raises(ConfigError, match=r"models\.ghost: model 'ghost' is not in the registry"):
        check_topology(parse_topology(_every_fleet(data, cloud_model="digits-cloud")), load_manifest(registry))


def test_the_suites_topology_passes_against_the_committed_registry():
    check_topology(parse_topology(BASE), load_manifest(MODELS))
