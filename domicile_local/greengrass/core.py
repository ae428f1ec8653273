"""A local Greengrass core device: deploys a fleet's deployment the way the nucleus does.

Per deployment (each rule names the nucleus source or developer guide page it follows):
- every component in the deployment is pinned to its version; each dependency's requirement must
  hold for what the deployment provides, and a dependency it does not provide is resolved to the
  newest version the cloud offers that meets every requirement. None: the deployment fails with the
  nucleus's NoAvailableComponentVersionException text (nucleus `DependencyResolver`).
- a component's recipe must have a manifest for the device's platform (recipe reference,
  `Manifests.Platform`; nucleus `ComponentManager`).
- artifacts are stored as `packages/artifacts/<component>/<version>/<last segment of the URI>` and
  checked against their digest; ZIP artifacts are unpacked into
  `packages/artifacts-unarchived/<component>/<version>/<name before its last dot>/` (nucleus
  `ComponentStore`, `NucleusPaths`, `ArtifactDownloader`).
- configuration: the recipe's default, then the deployment's reset and merge updates (developer
  guide, "Update component configurations").
- recipe variables as `domicile_local.greengrass.interpolation` describes.
- each component gets the nucleus's environment (developer guide, "Component environment variable
  reference") and its work folder `work/<component>` as working directory.
At run time the core routes greengrasssdk publishes through the legacy subscription router's
subscriptions and authorizes IPC calls against each recipe's access control.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domicile.errors import ConfigError
from domicile_local.greengrass.authorization import Authorizer, topic_matches
from domicile_local.greengrass.catalog import AWS_COMPONENTS
from domicile_local.greengrass.cloud import LAMBDA_ARTIFACT, DeploymentDocument, GreengrassCloud
from domicile_local.greengrass.interpolation import Interpolator, merge
from domicile_local.greengrass.ipc import IpcServer
from domicile_local.greengrass.semver import Version, satisfies

logger = logging.getLogger("domicile_local.greengrass")

NUCLEUS = "aws.greengrass.Nucleus"
ROUTER = "aws.greengrass.LegacySubscriptionRouter"
# The device the local core plays: the platform our edge components are built for.
DEVICE_PLATFORM = {"os": "linux", "architecture": "aarch64"}
NO_VERSION = "No local or cloud component version satisfies the requirements."
NO_SUBSCRIPTION = (
    "No subscription exists for the source {source} and subject {subject}. Deploy and configure "
    "aws.greengrass.LegacySubscriptionRouter component to support publishing from Lambdas."
)


class DeploymentFailed(ConfigError):
    """The nucleus would fail this deployment (and, with ROLLBACK, restore the previous one)."""


class RouterRefused(Exception):
    """The Lambda manager's answer to a publish no subscription allows (HTTP 400)."""


@dataclass
class DeployedComponent:
    name: str
    version: str
    component_type: str
    recipe: dict[str, Any]
    configuration: dict[str, Any]
    lifecycle: dict[str, Any]
    environment: dict[str, str]
    work_dir: Path
    provided_by_aws: bool = False


@dataclass
class LocalCore:
    root: Path
    thing_name: str
    region: str
    cloud_publish: Callable[[str, bytes], None]  # the nucleus's MQTT connection to AWS IoT Core
    platform: dict[str, str] = field(default_factory=lambda: dict(DEVICE_PLATFORM))
    nucleus_version: str = "2.16.1"  # what the device runs before a deployment names one
    components: dict[str, DeployedComponent] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.authorizer = Authorizer()
        self.subscriptions: list[dict[str, str]] = []
        self.ipc: IpcServer | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        for sub in ("packages/artifacts", "packages/artifacts-unarchived", "work", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- deployment --------------------------------------------------------------------------------
    def deploy(self, cloud: GreengrassCloud, document: DeploymentDocument) -> dict[str, DeployedComponent]:
        resolved = self._resolve(cloud, document)
        recipes = {name: self._recipe(cloud, name, version) for name, version in resolved.items()}
        manifests = {name: self._manifest(name, resolved[name], recipe) for name, recipe in recipes.items()}
        for name, manifest in manifests.items():
            if not _aws_provided(name):
                self._place_artifacts(cloud, name, resolved[name], manifest)
        configurations = {}
        for name, recipe in recipes.items():
            default = (recipe.get("ComponentConfiguration") or {}).get("DefaultConfiguration") or {}
            # A fresh device has no earlier configuration: a reset update leaves the default.
            configurations[name] = merge(default, document.components.get(name, {}).get("merge", {}))
        nucleus_config = configurations.get(NUCLEUS, {})
        with_config_vars = bool(nucleus_config.get("interpolateComponentConfiguration", False))
        system = self._system_parameters(resolved)
        interpolator = Interpolator(system, configurations)
        deployed: dict[str, DeployedComponent] = {}
        for name, recipe in recipes.items():
            dependencies = set(recipe.get("ComponentDependencies") or {})
            config = configurations[name]
            if with_config_vars:  # system parameters only, never {configuration:...}
                config = interpolator.interpolate(config, name, dependencies, with_configuration=False)
                configurations[name] = config
            lifecycle = manifests[name].get("Lifecycle") or recipe.get("Lifecycle") or {}
            lifecycle = interpolator.interpolate(lifecycle, name, dependencies, with_configuration=True)
            deployed[name] = DeployedComponent(
                name, resolved[name], recipe.get("ComponentType", "aws.greengrass.generic"), recipe, config,
                lifecycle, {}, self.root / "work" / name, _aws_provided(name),
            )  # fmt: skip
        self.components = deployed
        self._start_services(deployed)
        return deployed

    def _resolve(self, cloud: GreengrassCloud, document: DeploymentDocument) -> dict[str, str]:
        """Pin the deployment's components, then resolve every dependency to a version meeting all requirements."""
        requirements: dict[str, dict[str, str]] = {}
        for name, spec in document.components.items():
            requirements.setdefault(name, {})[document.thing_group] = spec["version"]
        requirements.setdefault(NUCLEUS, {})
        resolved: dict[str, str] = {}
        pending = list(requirements)
        while pending:
            name = pending.pop(0)
            version = self._choose(cloud, name, requirements[name])
            if resolved.get(name) == version:
                continue
            resolved[name] = version
            recipe = self._recipe(cloud, name, version)
            for dep, spec in (recipe.get("ComponentDependencies") or {}).items():
                requirements.setdefault(dep, {})[name] = str(spec.get("VersionRequirement", "*"))
                pending.append(dep)  # (re)check it against every requirement now known
        return resolved

    def _choose(self, cloud: GreengrassCloud, name: str, wanted: dict[str, str]) -> str:
        offered = list(AWS_COMPONENTS.get(name, {})) if _aws_provided(name) else cloud.versions_of(name)
        if name == NUCLEUS:
            offered = sorted(set(offered) | {self.nucleus_version})
        try:
            fitting = [v for v in offered if all(satisfies(v, req) for req in wanted.values())]
        except ValueError as exc:
            raise DeploymentFailed(f"{name}: {exc}") from exc
        if not fitting:
            constraints = ",".join(f" {source} requires {req}" for source, req in wanted.items())
            raise DeploymentFailed(
                f"{NO_VERSION} Check whether the version constraints conflict and that the component exists in your "
                "AWS account with a version that matches the version constraints. If the version constraints "
                f"conflict, revise deployments to resolve the conflict. Component {name} version constraints:"
                f"{constraints}."
            )
        return str(max(fitting, key=Version.parse))

    def _recipe(self, cloud: GreengrassCloud, name: str, version: str) -> dict[str, Any]:
        if _aws_provided(name):
            deps = AWS_COMPONENTS.get(name, {}).get(version, {})
            return {
                "ComponentName": name,
                "ComponentVersion": version,
                "ComponentDependencies": {
                    d: {"VersionRequirement": r, "DependencyType": "SOFT"} for d, r in deps.items()
                },
                "Manifests": [{"Platform": {}}],
            }
        return cloud.recipes[(name, version)]

    def _manifest(self, name: str, version: str, recipe: dict[str, Any]) -> dict[str, Any]:
        for manifest in recipe.get("Manifests") or [{}]:
            platform = manifest.get("Platform") or {}
            if all(value in ("*", self.platform.get(key)) for key, value in platform.items()):
                return dict(manifest)
        raise DeploymentFailed(
            f"Failed to find usable recipe for current platform: {self.platform}, for package: '{name}-v{version}'"
        )

    def _place_artifacts(self, cloud: GreengrassCloud, name: str, version: str, manifest: dict[str, Any]) -> None:
        stored = self.root / "packages/artifacts" / name / version
        unpacked = self.root / "packages/artifacts-unarchived" / name / version
        stored.mkdir(parents=True, exist_ok=True)
        unpacked.mkdir(parents=True, exist_ok=True)
        for artifact in manifest.get("Artifacts") or []:
            uri = str(artifact["Uri"])
            if uri == LAMBDA_ARTIFACT:  # the service packs the function's code; its folder is that package
                target = unpacked / "lambda-artifact"
                if not target.exists():
                    shutil.copytree(cloud.lambda_code[(name, version)], target)
                continue
            source = cloud.artifact_file(uri)
            target = stored / uri.rsplit("/", 1)[-1]
            shutil.copyfile(source, target)
            digest = base64.b64encode(hashlib.sha256(target.read_bytes()).digest()).decode()
            if artifact.get("Digest") and digest != artifact["Digest"]:
                target.unlink()
                raise DeploymentFailed(
                    f"{name} {version}: {uri}: Failed integrity check for the downloaded artifact. Artifact contents "
                    "may have changed after component version was created"
                )
            if str(artifact.get("Unarchive", "NONE")).upper() == "ZIP":
                stem = target.name[: target.name.rfind(".")] if target.name.find(".") > 0 else target.name
                with zipfile.ZipFile(target) as archive:
                    archive.extractall(unpacked / stem)

    def _system_parameters(self, resolved: dict[str, str]) -> Callable[[str, str, str], str | None]:
        def lookup(component: str, namespace: str, key: str) -> str | None:
            version = resolved.get(component, "")
            values = {
                ("artifacts", "path"): self.root / "packages/artifacts" / component / version,
                ("artifacts", "decompressedPath"): self.root / "packages/artifacts-unarchived" / component / version,
                ("work", "path"): self.root / "work" / component,
                ("kernel", "rootPath"): self.root,
            }
            if (namespace, key) == ("iot", "thingName"):
                return self.thing_name
            value = values.get((namespace, key))
            return str(value.resolve()) if value is not None else None

        return lookup

    def _start_services(self, deployed: dict[str, DeployedComponent]) -> None:
        router = deployed.get(ROUTER)
        self.subscriptions = list((router.configuration.get("subscriptions") or {}).values()) if router else []
        for component in deployed.values():
            component.work_dir.mkdir(parents=True, exist_ok=True)
            self.authorizer.register(component.name, component.configuration.get("accessControl") or {})
        if self.ipc is None:
            self.ipc = IpcServer(self.root / "ipc.socket", self.authorizer, self.cloud_publish)
        for component in deployed.values():
            if not component.provided_by_aws:
                component.environment = self._environment(component)

    def _environment(self, component: DeployedComponent) -> dict[str, str]:
        assert self.ipc is not None
        env = {
            "AWS_IOT_THING_NAME": self.thing_name,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "GGC_VERSION": self.components[NUCLEUS].version,
            "GG_ROOT_CA_PATH": str(self.root / "rootCA.pem"),
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": self.ipc.component_path,
            "SVCUID": self.ipc.token_for(component.name),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.ipc.token_for(component.name),
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://localhost:0/2016-11-01/credentialprovider/",
        }
        setenv = component.lifecycle.get("Setenv") or component.lifecycle.get("setenv") or {}
        env |= {k: str(v) for k, v in setenv.items()}
        if component.component_type == "aws.greengrass.lambda":
            # The Lambda launcher hands the function its configured variables (AWS_GREENGRASS_LAMBDA_PARAMS).
            params = component.configuration.get("lambdaExecutionParameters") or {}
            env |= {k: str(v) for k, v in (params.get("EnvironmentVariables") or {}).items()}
            env["MY_FUNCTION_ARN"] = str(component.recipe.get("ComponentSource", ""))
        return env

    # -- run time ----------------------------------------------------------------------------------
    def route_lambda_publish(self, source_arn: str, topic: str, payload: bytes) -> None:
        """greengrasssdk `publish()` from the Lambda `source_arn`: allowed only by a router subscription.

        A subscription names its source as `component:<name>` or as the function's versioned ARN
        (developer guide, "Legacy subscription router"); a function whose version changed matches neither.
        """
        names = {
            f"component:{c.name}" for c in self.components.values() if c.recipe.get("ComponentSource") == source_arn
        }
        for sub in self.subscriptions:
            if sub.get("source") not in names | {source_arn} or sub.get("target") != "cloud":
                continue
            if topic_matches(str(sub.get("subject", "")), topic):
                self.cloud_publish(topic, payload)
                return
        reason = NO_SUBSCRIPTION.format(source=source_arn, subject=topic)
        logger.error("%s", reason)
        raise RouterRefused(reason)

    def start(self, component: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        """Run a generic component's `Run` lifecycle step as the nucleus does: `sh -c`, its env, its work folder.

        The device is aarch64; this host may not be. Artifacts built for the device keep their place,
        but the process finds compiled packages in this host's environment first (a local-core deviation).
        """
        deployed = self.components[component]
        run = deployed.lifecycle.get("Run") or deployed.lifecycle.get("run")
        script = run.get("Script") if isinstance(run, dict) else run
        if not script:
            raise DeploymentFailed(f"{component}: its recipe has no Run lifecycle step")
        env = dict(deployed.environment)
        host_packages = sysconfig.get_paths()["purelib"]
        env["PYTHONPATH"] = os.pathsep.join(p for p in (host_packages, env.get("PYTHONPATH", "")) if p)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        out = open(log or self.root / "logs" / f"{component}.log", "ab")  # noqa: SIM115  (the process owns it)
        process = subprocess.Popen(["sh", "-c", script], cwd=deployed.work_dir, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.processes[component] = process
        return process

    def stop(self) -> None:
        # The nucleus stops a component by sending SIGTERM to its whole process tree, then SIGKILL
        # after the shutdown timeout (nucleus `UnixExec.close`).
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.ipc is not None:
            self.ipc.close()


def _aws_provided(name: str) -> bool:
    return name.startswith("aws.greengrass.")
