import copy
import tomllib

import pytest

from domicile.config.project import topology_file
from domicile.config.topology import FleetMode, ModelRole, load_topology, parse_topology
from domicile.errors import ConfigError

VALID = tomllib.loads(topology_file().read_text())


def test_shipped_topology_loads():
    topo = load_topology()
    assert topo.regions_of("eu") == ("eu-central-1", "eu-west-1")
    assert topo.regions_of("us") == ("us-east-1",)
    assert topo.home_regions() == ["eu-central-1", "us-east-1"]
    assert topo.jurisdiction_of_region("eu-central-1") == "eu"
    assert {f.mode for f in topo.fleets.values()} >= {FleetMode.HYBRID, FleetMode.EDGE_ONLY}
    assert topo.model_for(ModelRole.CLOUD).name == "digits-cloud"
    split = topo.split_model()
    assert split is not None and (split.name, split.cut, split.encoding) == ("digits-deep", "hidden1", "float16")


def _mutate(path: list[str], value):
    doc = copy.deepcopy(VALID)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["jurisdictions", "eu", "regions"], ["eu-moon-1"], "jurisdictions.eu.regions: unknown AWS region 'eu-moon-1'"),
        (["jurisdictions", "eu", "regions"], [], "jurisdictions.eu.regions"),
        (["fleets", "munich-line", "home_region"], "us-east-1", "fleets.munich-line.home_region: us-east-1 is outside"),
        (["fleets", "munich-line", "jurisdiction"], "mars", "fleets.munich-line.jurisdiction: unknown jurisdiction"),
        (["fleets", "munich-line", "mode"], "turbo", "fleets.munich-line.mode"),
        (["fleets", "munich-line", "devices"], 0, "fleets.munich-line.devices"),
        (["fleets", "munich-line", "colour"], "red", "fleets.munich-line.colour: Extra inputs are not permitted"),
        (["fleets", "munich-line", "devices"], KeyError, "fleets.munich-line.devices: Field required"),
        (["models", "digits-edge", "jurisdictions"], ["atlantis"], "models.digits-edge.jurisdictions: unknown"),
        (["models", "digits-edge", "role"], "cloud", "models: no model has role 'edge'"),
        (["jurisdictions", "us", "regions"], ["eu-west-1"], "already belongs to eu"),
        (["models", "digits-deep", "cut"], KeyError, "models.digits-deep: cut: a split model needs the tensor"),
        (["models", "digits-deep", "encoding"], "bfloat16", "models.digits-deep.encoding"),
        (["models", "digits-cloud", "cut"], "hidden1", "cut: only a split model is cut; this model's role is 'cloud'"),
        (["models", "digits-deep", "jurisdictions"], ["us"], "fleets.hamburg-lab.mode: model 'digits-deep' may not"),
        (["models", "digits-deep", "role"], "edge", "models.digits-deep: cut: only a split model is cut"),
    ],
)
def test_invalid_topology_names_the_key(path, value, expected):
    with pytest.raises(ConfigError) as err:
        parse_topology(_mutate(path, value))
    assert expected in str(err.value)


def test_a_split_fleet_needs_a_split_model():
    doc = copy.deepcopy(VALID)
    del doc["models"]["digits-deep"]
    with pytest.raises(ConfigError, match=r"fleets\.hamburg-lab\.mode: split needs a model with role 'split'"):
        parse_topology(doc)
    doc["fleets"]["hamburg-lab"]["mode"] = "hybrid"
    assert parse_topology(doc).split_model() is None  # no split fleet: no split model needed


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_topology(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[fleets\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_topology(bad)
