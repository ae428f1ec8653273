"""A fleet on a user's own models (added with `models add`, another input rank): what synth deploys for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from domicile.config.topology import Topology, parse_topology
from domicile.errors import ConfigError
from tests.conftest import MODELS
from tests.unit.test_fleet_models import WINDOWS, _every_fleet, topology
from tests.user_models import user_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return user_registry(tmp_path_factory.mktemp("reg") / "models", tmp_path_factory.mktemp("byom"))


def _topology() -> Topology:
    data = _every_fleet(topology(WINDOWS), edge_model="digits-edge", cloud_model="digits-cloud")
    data["fleets"]["munich-line"] |= {"edge_model": "windows", "cloud_model": "windows-cloud"}
    return parse_topology(data)


def test_a_fleet_on_user_models_gets_its_model_component_and_its_escalation_route(registry, tmp_path, monkeypatch):
    from infra.app import build_app, regional_stack_name

    monkeypatch.setenv("DOMICILE_MODELS", str(registry))
    app = build_app(_topology(), outdir=str(tmp_path / "cdk.out"))
    stack = next(
        s for s in app.node.children if isinstance(s, Stack) and s.stack_name == regional_stack_name("eu-central-1")
    )
    template = Template.from_stack(stack)
    recipes = {}
    for component in template.find_resources("AWS::GreengrassV2::ComponentVersion").values():
        properties = component["Properties"]
        if "LambdaFunction" in properties:
            params = properties["LambdaFunction"]
            recipes[params["ComponentName"]] = (params["ComponentDependencies"], params["ComponentLambdaParameters"])
    deps, params = recipes["com.domicile.edge.munich-line"]
    assert "com.domicile.model.windows" in deps and "com.domicile.model.digits-edge" not in deps
    assert params["EnvironmentVariables"]["MODEL_NAME"] == "windows"
    berlin_deps, _ = recipes["com.domicile.edge.berlin-depot"]
    assert "com.domicile.model.digits-edge" in berlin_deps  # the other fleets keep theirs
    functions = template.find_resources("AWS::Lambda::Function")
    escalate = next(
        f for f in functions.values() if f["Properties"]["Handler"] == "functions.inference.iot_escalate.handler"
    )
    routes = json.loads(escalate["Properties"]["Environment"]["Variables"]["FLEET_MODELS"])
    assert routes == {"berlin-depot": "digits-cloud", "hamburg-lab": "digits-cloud", "munich-line": "windows-cloud"}
    assembly = app.synth()
    asset = next(Path(assembly.directory, a) for a in Path(assembly.directory).iterdir() if (a / "functions").is_dir())
    assert (asset / "models" / "windows-cloud-1.0.0.onnx").is_file()  # the cloud model ships with the functions


def test_synth_refuses_a_fleet_whose_models_the_registry_does_not_serve(tmp_path, monkeypatch):
    from infra.app import build_app

    monkeypatch.setenv("DOMICILE_MODELS", str(MODELS))  # the committed registry: no windows models
    with pytest.raises(ConfigError, match=r"models\.windows: model 'windows' is not in the registry"):
        build_app(_topology(), outdir=str(tmp_path / "cdk.out"))
