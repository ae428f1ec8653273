"""Mutation tests: each edge deployment fault a real core would hit must fail here, naming its cause.

Each test breaks one thing in `infra/` the way the templates once were (or could be again), then
synthesizes a one-fleet app and lets the template checks, synth or the local Greengrass core judge it.
Each also runs unbroken first, so the failure is the mutation's and nothing else's.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from domicile.config.topology import parse_topology
from domicile.errors import ConfigError
from domicile_local.greengrass import ConflictException, GreengrassCloud, LocalCore
from domicile_local.sim.assembly import load_stacks
from domicile_local.sim.devices import RouterTransport
from edge_components.inference.build import build_device
from edge_components.inference.settings import load_edge_settings
from infra.constructs import edge_fleet
from infra.greengrass import ROUTER
from tests.conftest import TOPOLOGY

pytestmark = pytest.mark.slow
THING = "munich-line-0"


def _topology(mode: str = "hybrid", devices: int = 2) -> Any:
    data = tomllib.loads(TOPOLOGY.read_text())
    data["models"] = {k: v for k, v in data["models"].items() if v["role"] != "split"}
    data["fleets"] = {"munich-line": {**data["fleets"]["munich-line"], "mode": mode, "devices": devices}}
    return parse_topology(data)


def _synth(tmp_path: Path, name: str, **kwargs: Any) -> GreengrassCloud:
    from infra.app import build_app

    outdir = tmp_path / name
    build_app(_topology(**kwargs), outdir=str(outdir)).synth()
    return _cloud(outdir)


def _cloud(*outdirs: Path) -> GreengrassCloud:
    """One Greengrass account that the assemblies are deployed to in turn (a stack, then its updates)."""
    cloud = GreengrassCloud(outdirs[-1])
    for outdir in outdirs:
        for stack in load_stacks(outdir):
            cloud.add_stack(stack)
    return cloud


class _Link:
    """The core's connection to IoT Core, recording what it would send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.sent.append(topic)


def _run_one_case(cloud: GreengrassCloud, root: Path) -> tuple[Any, _Link]:
    """Deploy munich-line to one core, start its device as deployed, answer one case, flush."""
    from domicile.models.datasets import load_digits_splits

    link = _Link()
    core = LocalCore(root, THING, "eu-central-1", cloud_publish=link.publish)
    component = core.deploy(cloud, cloud.deployments["domicile-munich-line"])["com.domicile.edge.munich-line"]
    try:
        settings = load_edge_settings(component.environment)
        device = build_device(settings, RouterTransport(core, component.environment["MY_FUNCTION_ARN"]))
        device.infer(["c0"], load_digits_splits().test.x[:1])
        device.close()  # flushes the packer: the result envelope is published now
        return device, link
    finally:
        core.stop()


def test_1_without_the_legacy_subscription_router_nothing_the_lambda_publishes_leaves_the_device(tmp_path, monkeypatch):
    device, link = _run_one_case(_synth(tmp_path, "ok"), tmp_path / "ok-core")
    assert link.sent == [f"domicile/eu/munich-line/{THING}/result"] and device.forward.last_refusal is None

    render = edge_fleet.EdgeFleets._deployment_components
    dependencies = edge_fleet.EdgeFleets._dependencies
    monkeypatch.setattr(edge_fleet.EdgeFleets, "_deployment_components",
                        lambda self, *a: {k: v for k, v in render(self, *a).items() if k != ROUTER})  # fmt: skip
    monkeypatch.setattr(edge_fleet.EdgeFleets, "_dependencies",
                        lambda self, *a: {k: v for k, v in dependencies(self, *a).items() if k != ROUTER})  # fmt: skip
    device, link = _run_one_case(_synth(tmp_path, "no-router"), tmp_path / "no-router-core")
    assert link.sent == []
    assert len(device.forward.spool) == 1  # kept, never lost: but a real core would keep refusing it
    refusal = device.forward.last_refusal or ""
    assert "No subscription exists for the source arn:aws:lambda:eu-central-1:" in refusal
    assert f"and subject domicile/eu/munich-line/{THING}/result" in refusal
    assert "Deploy and configure aws.greengrass.LegacySubscriptionRouter" in refusal


def test_2_artifacts_the_core_does_not_unpack_leave_the_model_folder_empty_and_the_device_cannot_start(
    tmp_path, monkeypatch
):
    _run_one_case(_synth(tmp_path, "ok"), tmp_path / "ok-core")  # unbroken, the model loads

    artifact = edge_fleet.EdgeFleets._artifact

    def stored_as_is(self: Any, *args: Any) -> Any:  # the file stays under its hashed key, never unpacked
        made = artifact(self, *args)
        made.recipe_entry.pop("Unarchive")
        return made

    monkeypatch.setattr(edge_fleet.EdgeFleets, "_artifact", stored_as_is)
    cloud = _synth(tmp_path, "hashed")
    with pytest.raises(ConfigError, match=r"model manifest .*artifacts-unarchived/com\.domicile\.model\.digits-edge/"
                                          r".*/manifest\.json does not exist"):  # fmt: skip
        _run_one_case(cloud, tmp_path / "hashed-core")
    (stored,) = (tmp_path / "hashed-core/packages/artifacts/com.domicile.model.digits-edge").glob("*/*")
    assert stored.suffix == ".zip" and len(stored.stem) == 64  # what the device got: a file named by its hash


def test_3_a_changed_recipe_under_an_unchanged_version_is_refused_as_a_conflict(tmp_path, monkeypatch):
    # unbroken: an update that changes the fleet's mode (the component's environment) makes new versions
    first, update = _synth(tmp_path, "hybrid", mode="hybrid"), _synth(tmp_path, "edge-only", mode="edge-only")
    both = _cloud(tmp_path / "hybrid", tmp_path / "edge-only")
    assert len(both.versions_of("com.domicile.edge.munich-line")) == 2
    assert first.versions_of("com.domicile.edge.munich-line") != update.versions_of("com.domicile.edge.munich-line")

    monkeypatch.setattr(edge_fleet, "content_version", lambda base, rendered: base)  # versions ignore content
    _synth(tmp_path, "hybrid-fixed", mode="hybrid")
    _synth(tmp_path, "edge-only-fixed", mode="edge-only")
    with pytest.raises(ConflictException, match=r"com\.domicile\.edge\.munich-line 1\.0\.0: ConflictException \(409\)"):
        _cloud(tmp_path / "hybrid-fixed", tmp_path / "edge-only-fixed")


def test_4_an_abort_threshold_at_or_over_the_fleet_size_fails_synth(tmp_path, monkeypatch):
    from infra.app import build_app

    build_app(_topology(devices=2), outdir=str(tmp_path / "ok"))  # unbroken: min executed 1 < 2 devices
    monkeypatch.setattr(edge_fleet, "abort_min_executed", lambda fleet: fleet.devices)
    with pytest.raises(ConfigError, match=r"fleets\.munich-line\.devices: the deployment's abort criteria need more "
                                          r"than 2 devices to have run the job, and the fleet has 2: they can never "
                                          r"fire"):  # fmt: skip
        build_app(_topology(devices=2), outdir=str(tmp_path / "broken"))
