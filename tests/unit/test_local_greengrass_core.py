"""Contract tests of the local Greengrass core: each rule as the nucleus source or the developer guide states it.

Recipes here are small and written for the rule under test; `tests/integration/test_edge_component.py`
and `tests/infra/test_greengrass_mutations.py` deploy the synthesized templates.
"""

import base64
import hashlib
import io
import json
import re
import zipfile

import pytest

from domicile_local.greengrass import (
    ConflictException,
    DeploymentDocument,
    DeploymentFailed,
    GreengrassCloud,
    LocalCore,
)
from domicile_local.greengrass.authorization import MQTT_PROXY, Authorizer, Unauthorized, topic_matches
from domicile_local.greengrass.core import RouterRefused
from domicile_local.greengrass.interpolation import Interpolator, merge
from domicile_local.greengrass.semver import satisfies

NUCLEUS_PIN = {"aws.greengrass.Nucleus": {"version": "2.16.1", "merge": {"interpolateComponentConfiguration": True}}}


def _digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _recipe(name, version="1.0.0", *, deps=None, artifacts=None, config=None, lifecycle=None, platform=None):
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": config or {}},
        "ComponentDependencies": deps or {},
        "Manifests": [
            {"Platform": platform or {"os": "linux"}, "Artifacts": artifacts or [], "Lifecycle": lifecycle or {}}
        ],
    }


def _deployment(**components):
    specs = {name: {"version": v, "merge": {}} if isinstance(v, str) else v for name, v in components.items()}
    return DeploymentDocument("d", "group", {**NUCLEUS_PIN, **specs})


@pytest.fixture
def cloud(tmp_path):
    return GreengrassCloud(tmp_path / "cdk.out")


@pytest.fixture
def sent():
    return []  # what the core handed to its link to IoT Core


@pytest.fixture
def core(tmp_path, sent):
    made = LocalCore(tmp_path / "device", "dev-1", "eu-central-1", cloud_publish=lambda t, p: sent.append((t, p)))
    yield made
    made.stop()


# -- versions (nucleus DependencyResolver: semver4j NPM requirements) --------------------------------
@pytest.mark.parametrize(
    ("version", "requirement", "expected"),
    [
        ("2.16.1", ">=2.6.0 <3.0.0", True),
        ("2.5.9", ">=2.6.0 <3.0.0", False),
        ("2.17.0", ">=2.0.0 <2.17.0", False),
        ("1.0.7", "1.0.7", True),
        ("1.0.8", "1.0.7", False),
        ("1.0.8", "=1.0.8", True),
        ("3.1.0", "<2.0.0 || >=3.0.0", True),
        ("2.0.0", "*", True),
        ("1.0.0-beta", ">=1.0.0", False),  # a pre-release sorts before its release
    ],
)
def test_version_requirements_read_as_the_nucleus_reads_them(version, requirement, expected):
    assert satisfies(version, requirement) is expected


def test_a_malformed_requirement_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"version requirement '>=two': "):
        satisfies("1.0.0", ">=two")


# -- dependency resolution ----------------------------------------------------------------------
def test_an_unmet_dependency_fails_the_deployment_with_the_nucleus_message(cloud, core):
    cloud.create(_recipe("com.example.App", deps={"aws.greengrass.LambdaManager": {"VersionRequirement": ">=2.9.0"}}))
    with pytest.raises(DeploymentFailed) as failed:
        core.deploy(cloud, _deployment(**{"com.example.App": "1.0.0"}))
    assert str(failed.value) == (
        "No local or cloud component version satisfies the requirements. Check whether the version constraints "
        "conflict and that the component exists in your AWS account with a version that matches the version "
        "constraints. If the version constraints conflict, revise deployments to resolve the conflict. Component "
        "aws.greengrass.LambdaManager version constraints: com.example.App requires >=2.9.0."
    )


def test_a_pinned_version_that_breaks_a_dependency_requirement_fails_naming_both(cloud, core):
    cloud.create(_recipe("com.example.App", deps={"aws.greengrass.Nucleus": {"VersionRequirement": ">=2.17.0"}}))
    with pytest.raises(DeploymentFailed, match=r"Component aws.greengrass.Nucleus version constraints: group "
                                               r"requires 2.16.1, com.example.App requires >=2.17.0\."):  # fmt: skip
        core.deploy(cloud, _deployment(**{"com.example.App": "1.0.0"}))


def test_a_dependency_the_deployment_does_not_name_resolves_to_the_newest_fitting_version(cloud, core):
    cloud.create(_recipe("com.example.App", deps={"aws.greengrass.LambdaManager": {"VersionRequirement": ">=2.3.0"}}))
    deployed = core.deploy(cloud, _deployment(**{"com.example.App": "1.0.0"}))
    assert deployed["aws.greengrass.LambdaManager"].version == "2.3.7"  # 2.3.7 accepts nucleus 2.16.1


def test_a_recipe_with_no_manifest_for_the_device_platform_fails(cloud, core):
    cloud.create(_recipe("com.example.X86", platform={"os": "linux", "architecture": "amd64"}))
    with pytest.raises(DeploymentFailed, match=r"Failed to find usable recipe for current platform: .*aarch64.*"
                                               r"com.example.X86-v1.0.0"):  # fmt: skip
        core.deploy(cloud, _deployment(**{"com.example.X86": "1.0.0"}))


# -- the cloud: component versions are immutable ---------------------------------------------------
def test_a_changed_recipe_under_the_same_version_is_a_conflict(cloud):
    cloud.create(_recipe("com.example.App", config={"a": 1}))
    cloud.create(_recipe("com.example.App", config={"a": 1}))  # the same recipe again: an unchanged stack
    with pytest.raises(ConflictException, match=r"com.example.App 1.0.0: ConflictException \(409\)"):
        cloud.create(_recipe("com.example.App", config={"a": 2}))


# -- artifacts (ComponentStore, NucleusPaths, ArtifactDownloader) ----------------------------------
def test_artifacts_land_under_the_last_segment_of_their_key_and_zips_unpack_beside_them(cloud, core, tmp_path):
    archive = _zip({"manifest.json": b"{}", "model.onnx": b"onnx"})
    source = tmp_path / "asset.zip"
    source.write_bytes(archive)
    cloud.assets["5e1f00.zip"] = source
    uri = "s3://bucket/5e1f00.zip"
    cloud.create(_recipe("com.example.Model", artifacts=[{"Uri": uri, "Digest": _digest(archive), "Unarchive": "ZIP"}]))
    core.deploy(cloud, _deployment(**{"com.example.Model": "1.0.0"}))
    assert (core.root / "packages/artifacts/com.example.Model/1.0.0/5e1f00.zip").read_bytes() == archive
    unpacked = core.root / "packages/artifacts-unarchived/com.example.Model/1.0.0/5e1f00"
    assert sorted(p.name for p in unpacked.iterdir()) == ["manifest.json", "model.onnx"]


def test_an_artifact_whose_digest_differs_fails_the_deployment(cloud, core, tmp_path):
    source = tmp_path / "asset.bin"
    source.write_bytes(b"what was uploaded")
    cloud.assets["key.bin"] = source
    cloud.create(_recipe("com.example.Bad", artifacts=[{"Uri": "s3://b/key.bin", "Digest": _digest(b"other")}]))
    with pytest.raises(DeploymentFailed, match="Failed integrity check for the downloaded artifact"):
        core.deploy(cloud, _deployment(**{"com.example.Bad": "1.0.0"}))
    assert not (core.root / "packages/artifacts/com.example.Bad/1.0.0/key.bin").exists()


# -- recipe variables (KernelConfigResolver) -------------------------------------------------------
def _system(component, namespace, key):
    return {("artifacts", "decompressedPath"): f"/gg/unarchived/{component}", ("iot", "thingName"): "dev-1"}.get(
        (namespace, key)
    )


def test_lifecycle_variables_own_configuration_and_direct_dependencies_only():
    configs = {"app": {"port": 8, "nested": {"a": [1]}}, "dep": {"x": "y"}, "other": {"x": "z"}}
    interpolate = Interpolator(_system, configs).interpolate
    text = "{configuration:/port} {configuration:/nested} {dep:artifacts:decompressedPath} {other:configuration:/x}"
    assert interpolate(text, "app", {"dep"}, with_configuration=True) == (
        '8 {"a":[1]} /gg/unarchived/dep {other:configuration:/x}'  # `other` is no dependency: left as written
    )


def test_configuration_gets_system_parameters_but_never_configuration_values():
    interpolate = Interpolator(_system, {"app": {"port": 8}, "dep": {}}).interpolate
    value = {"dir": "{dep:artifacts:decompressedPath}/m", "topic": "t/{iot:thingName}", "p": "{configuration:/port}"}
    assert interpolate(value, "app", {"dep"}, with_configuration=False) == {
        "dir": "/gg/unarchived/dep/m", "topic": "t/dev-1", "p": "{configuration:/port}"}  # fmt: skip


def test_without_interpolate_component_configuration_the_configuration_keeps_its_braces(cloud, core):
    deps = {"com.example.Dep": {"VersionRequirement": ">=1.0.0"}}
    cloud.create(_recipe("com.example.Dep"))
    cloud.create(_recipe("com.example.App", deps=deps, config={"dir": "{com.example.Dep:artifacts:decompressedPath}"}))
    off = {"aws.greengrass.Nucleus": {"version": "2.16.1", "merge": {}}}
    deployed = core.deploy(cloud, DeploymentDocument("d", "g", {**off, "com.example.App": {"version": "1.0.0"}}))
    assert deployed["com.example.App"].configuration["dir"] == "{com.example.Dep:artifacts:decompressedPath}"
    deployed = core.deploy(cloud, _deployment(**{"com.example.App": "1.0.0"}))
    assert (
        deployed["com.example.App"].configuration["dir"].endswith("packages/artifacts-unarchived/com.example.Dep/1.0.0")
    )


def test_merge_updates_merge_objects_and_replace_everything_else():
    default = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert merge(default, {"a": {"c": [3]}, "e": True}) == {"a": {"b": 1, "c": [3]}, "d": "x", "e": True}


def test_components_get_the_nucleus_environment_and_their_work_folder(cloud, core):
    cloud.create(_recipe("com.example.App", lifecycle={"Setenv": {"HOME_DIR": "{work:path}"}, "Run": "true"}))
    app = core.deploy(cloud, _deployment(**{"com.example.App": "1.0.0"}))["com.example.App"]
    env = app.environment
    assert env["AWS_IOT_THING_NAME"] == "dev-1" and env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-central-1"
    assert env["GGC_VERSION"] == "2.16.1" and env["SVCUID"]
    assert env["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"].endswith("ipc.socket")
    assert env["HOME_DIR"] == str((core.root / "work" / "com.example.App").resolve()) and app.work_dir.is_dir()


# -- run time: router and IPC authorization --------------------------------------------------------
def test_the_router_passes_only_subscribed_subjects_from_their_source(cloud, core, sent):
    arn = "arn:aws:lambda:eu-central-1:123456789012:function:edge:3"
    recipe = {**_recipe("com.example.Lambda"), "ComponentType": "aws.greengrass.lambda", "ComponentSource": arn}
    cloud.create(recipe)
    subscriptions = {"subscriptions": {"s": {"id": "s", "source": "component:com.example.Lambda",
                                             "subject": "up/{iot:thingName}/+", "target": "cloud"}}}  # fmt: skip
    core.deploy(cloud, _deployment(**{"com.example.Lambda": "1.0.0", "aws.greengrass.LegacySubscriptionRouter": {
        "version": "2.1.15", "merge": subscriptions}}))  # fmt: skip
    core.route_lambda_publish(arn, "up/dev-1/result", b"1")
    assert sent == [("up/dev-1/result", b"1")]
    for source, topic in ((arn, "up/dev-2/result"), (arn.replace(":3", ":4"), "up/dev-1/result")):
        with pytest.raises(RouterRefused, match=f"No subscription exists for the source {source} and subject {topic}"):
            core.route_lambda_publish(source, topic, b"x")  # another device; a function version not subscribed


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d/c", False),
        ("a/#", "a/b/c", True),
        ("a/b", "a/b/c", False),
        ("a/*", "a/b/c", True),
        ("a/b", "a/b", True),
    ],
)
def test_resources_match_mqtt_style(pattern, topic, expected):
    assert topic_matches(pattern, topic) is expected


def test_ipc_authorization_needs_the_operation_and_a_matching_resource():
    authorizer = Authorizer()
    authorizer.register("c", {MQTT_PROXY: {"p": {"operations": ["aws.greengrass#PublishToIoTCore"],
                                                 "resources": ["up/dev-1/+"]}}})  # fmt: skip
    authorizer.check("c", MQTT_PROXY, "aws.greengrass#PublishToIoTCore", "up/dev-1/result")
    reason = "Principal c is not authorized to perform aws.greengrass.ipc.mqttproxy:aws.greengrass#SubscribeToIoTCore"
    with pytest.raises(Unauthorized, match=re.escape(reason + " on resource up/dev-1/result")):
        authorizer.check("c", MQTT_PROXY, "aws.greengrass#SubscribeToIoTCore", "up/dev-1/result")
    with pytest.raises(Unauthorized):
        authorizer.check("c", MQTT_PROXY, "aws.greengrass#PublishToIoTCore", "up/dev-2/result")
    with pytest.raises(Unauthorized):
        authorizer.check("someone-else", MQTT_PROXY, "aws.greengrass#PublishToIoTCore", "up/dev-1/result")


def test_a_recipe_is_json_the_cloud_keeps_as_written(cloud):
    recipe = _recipe("com.example.App")
    cloud.create(json.loads(json.dumps(recipe)))
    assert cloud.recipes[("com.example.App", "1.0.0")] == recipe


def test_a_root_too_long_for_a_socket_path_gives_components_the_path_from_their_work_folder(cloud, tmp_path):
    import subprocess
    import sys

    root = tmp_path / ("r" * 90) / "device"  # ".../ipc.socket" over the 108 bytes of a Unix socket address
    core = LocalCore(root, "dev-1", "eu-central-1", cloud_publish=lambda t, p: None)
    cloud.create(_recipe("com.example.App", lifecycle={"Run": "true"}))
    try:
        app = core.deploy(cloud, _deployment(**{"com.example.App": "1.0.0"}))["com.example.App"]
        assert app.environment["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"] == "../../ipc.socket"
        probe = "import socket; socket.socket(socket.AF_UNIX).connect('../../ipc.socket')"
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd=app.work_dir, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
    finally:
        core.stop()
