"""Greengrass v2 edge fleets of one home region.

Per region: the model components (each a ZIP artifact in the region's CDK asset bucket with its
SHA-256 digest, unpacked on the core), the edge code (a Lambda function packaged for the devices,
or a ZIP artifact for generic components), and a token exchange role and role alias that read
only those artifacts.
Per fleet: its edge component (a pinned Lambda-function component, or a generic component that
publishes over IPC), a thing group, a deployment to it (the pinned AWS components, staged rollout,
timeout, abort criteria, ROLLBACK on failure), and an IoT policy that lets each device publish
only on its own topics. Every component version is derived from what the component renders
(`infra.greengrass.content_version`), so a changed recipe is always a new version.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, ArnFormat, Stack
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as assets
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from domicile.config.project import MANIFEST_FILE, registry_dir
from domicile.config.topology import EdgeComponentKind, Fleet, FleetMode, ModelPlacement
from domicile.errors import ConfigError
from domicile.models.registry import ModelEntry, load_manifest
from domicile.split.model import split_entry
from domicile.wire.topics import ROOT as TOPIC_ROOT
from infra.aspects.checkov import skip_checkov
from infra.bundling import EDGE_PACKAGE, PROJECT_ROOT, asset_hash, build_asset, python_function_code
from infra.constructs.nag import BASIC_EXECUTION
from infra.constructs.storage import function_log_group
from infra.greengrass import (
    LAMBDA_MANAGER,
    MIN_LAMBDA_MANAGER,
    MIN_NUCLEUS,
    NUCLEUS,
    NUCLEUS_MERGE,
    PINNED_VERSIONS,
    ROUTER,
    TOKEN_EXCHANGE,
    abort_min_executed,
    artifact_digest,
    check_abort_criteria,
    content_version,
    deterministic_zip,
    local_input_topic,
    mqttproxy_access_control,
    router_subscriptions,
    same_major,
    unarchived_path,
)

# The devices' Python (Greengrass runs Lambda components with the device's own interpreter).
EDGE_RUNTIME = lambda_.Runtime.PYTHON_3_12
EDGE_ARCHITECTURE = lambda_.Architecture.ARM_64
LOCAL_INPUT_TOPIC = local_input_topic("+")
ARTIFACT_CACHE = PROJECT_ROOT / ".cache" / "greengrass-artifacts"
GENERIC_ENTRY_POINT = "edge_components.inference.ipc_component"
PLATFORM = {"os": "linux", "architecture": "aarch64"}


@dataclass(frozen=True)
class ModelArtifacts:
    """What one model component ships to devices: a model file and the manifest that vouches for it."""

    name: str  # the component's: com.domicile.model.<name>
    model: str  # the registry's name, which the device loads
    version: str
    sha256: str
    description: str
    files: tuple[Path, ...]  # the model first, then a fallback version (if any), then its manifest

    @classmethod
    def edge(cls, model: ModelEntry, model_dir: Path) -> ModelArtifacts:
        """The deployed version, and the one before it: a device that cannot load the new one keeps that."""
        registry = load_manifest(model_dir)
        stages = registry.stages[model.name]
        previous = stages.live if stages.canary else (stages.history[-1] if stages.history else None)
        files = [model_dir / model.file]
        if previous and previous != model.version:
            files.append(model_dir / registry.versions[model.name][previous].file)
        files.append(model_dir / MANIFEST_FILE)
        return cls(model.name, model.name, model.version, model.sha256, model.description, tuple(files))

    @classmethod
    def split_head(cls, placement: ModelPlacement, model_dir: Path) -> ModelArtifacts:
        """The head of the split model at the topology's cut; synth fails if it was never partitioned."""
        entry, spec = split_entry(load_manifest(model_dir), placement.name)
        key = f"{placement.cut}/head"
        if key not in spec.parts:
            raise ConfigError(
                f"models.{placement.name}.cut: the registry has no head of {entry.name} {entry.version} at "
                f"{placement.cut!r}; run `domicile split partition --model {entry.name} --cut {placement.cut}`"
            )
        head = spec.parts[key]
        files = (model_dir / head.file, model_dir / MANIFEST_FILE)
        description = f"head of {entry.name} up to {placement.cut}"
        return cls(f"{entry.name}-head", entry.name, entry.version, head.sha256, description, files)


@dataclass(frozen=True)
class EdgeFleetProps:
    jurisdiction: str
    fleets: list[Fleet]
    models: dict[str, ModelEntry]  # fleet name -> the edge model its devices run (the topology's edge_model)
    key: kms.IKey  # the region's key (the edge function's log group)
    split: ModelPlacement | None = None  # the split model, for fleets in split mode
    model_dir: Path = field(default_factory=registry_dir)  # the project's registry


@dataclass(frozen=True)
class _Artifact:
    """A ZIP artifact in the region's asset bucket, as a recipe lists it."""

    uri: Any  # s3://<bucket token>/<key>
    object_key: str
    recipe_entry: dict[str, Any]


@dataclass(frozen=True)
class _ModelComponent:
    name: str
    version: str
    component: greengrass.CfnComponentVersion
    artifacts: ModelArtifacts
    model_dir: str  # the recipe variable for the folder the model files are unpacked into


class EdgeFleets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: EdgeFleetProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.fleets = list(props.fleets)

        # --- token exchange: what a core device may do with AWS credentials (fetch our artifacts, log)
        self.token_exchange_role = iam.Role(
            self, "TokenExchangeRole", assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com")
        )
        self.token_exchange_role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/greengrass/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.role_alias = iot.CfnRoleAlias(
            self,
            "TokenExchangeRoleAlias",
            role_arn=self.token_exchange_role.role_arn,
            role_alias=f"domicile-{stack.region}-token-exchange",
            credential_duration_seconds=3600,
        )

        # --- model components: a ZIP artifact each, verified by digest and unpacked on the core
        # One component per edge model the region's fleets run (the first keeps the id "Model").
        by_model: dict[str, _ModelComponent] = {}
        for entry in sorted({e.name: e for e in props.models.values()}.values(), key=lambda e: e.name):
            construct_id = "Model" if not by_model else f"Model{_pascal(entry.name)}"
            by_model[entry.name] = self._model_component(construct_id, ModelArtifacts.edge(entry, props.model_dir))
        # fleet name -> the model component its devices depend on
        self.model_components: dict[str, _ModelComponent] = {
            fleet.name: by_model[props.models[fleet.name].name] for fleet in props.fleets
        }
        split_fleets = [f.name for f in props.fleets if f.mode is FleetMode.SPLIT]
        if split_fleets:
            if props.split is None:
                raise ConfigError(f"fleets.{split_fleets[0]}.mode: split needs a model with role 'split'")
            head = self._model_component("SplitHead", ModelArtifacts.split_head(props.split, props.model_dir))
            self.model_components |= dict.fromkeys(split_fleets, head)

        kinds = {fleet.component for fleet in props.fleets}
        # --- Lambda components: the edge inference Lambda, packaged for the devices; never invoked in the cloud
        self.function: lambda_.Function | None = None
        if EdgeComponentKind.LAMBDA in kinds:
            self.function = lambda_.Function(
                self,
                "EdgeFunction",
                description="domicile edge inference, deployed to Greengrass core devices as a component",
                runtime=EDGE_RUNTIME,
                architecture=EDGE_ARCHITECTURE,
                handler="edge_components.inference.lambda_function.function_handler",
                code=python_function_code(EDGE_RUNTIME, EDGE_ARCHITECTURE, EDGE_PACKAGE),
                memory_size=512,
                log_group=function_log_group(self, "EdgeFunctionLogs", key=props.key),
            )
            skip_checkov(
                self.function.node.default_child, "CKV_AWS_115",  # type: ignore[arg-type]
                "The edge function is the source of a Greengrass component: it runs on the devices, never in "
                "Lambda, so no cloud concurrency is ever drawn from it.",
            )  # fmt: skip
            self.version = self.function.current_version
        # --- generic components: the same package as a ZIP artifact, run by the nucleus as a process
        self.code_artifact = self._code_artifact() if EdgeComponentKind.GENERIC in kinds else None

        self.components: dict[str, greengrass.CfnComponentVersion] = {}
        self.component_versions: dict[str, tuple[str, str]] = {}  # fleet -> (component name, version)
        self.thing_groups: dict[str, iot.CfnThingGroup] = {}
        self.deployments: dict[str, greengrass.CfnDeployment] = {}
        self.policies: dict[str, iot.CfnPolicy] = {}
        for fleet in props.fleets:
            self._fleet(fleet, props.split)
        self._suppress_nag()

    # -- artifacts ---------------------------------------------------------------------------------
    def _artifact(self, construct_id: str, path: Path, read: str) -> _Artifact:
        """An in-region S3 artifact that only this stack's token exchange role may read.

        The nucleus calls s3:GetBucketLocation before s3:GetObject (developer guide, "Authorize core
        devices to interact with AWS services"), so the role gets both, on this object's key alone.
        """
        asset = assets.Asset(self, construct_id, path=str(path))
        key = asset.s3_object_key
        if "${Token" in key:
            raise ConfigError(f"{path}: the asset's S3 key is not known at synth; the recipe cannot name its folder")
        bucket = f"arn:{Stack.of(self).partition}:s3:::{asset.s3_bucket_name}"
        self.token_exchange_role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{bucket}/{key}"])
        )
        self.token_exchange_role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[bucket])
        )
        uri = f"s3://{asset.s3_bucket_name}/{key}"
        entry = {"Uri": uri, "Digest": artifact_digest(path), "Algorithm": "SHA-256", "Unarchive": "ZIP",
                 "Permission": {"Read": read, "Execute": "NONE"}}  # fmt: skip
        return _Artifact(uri, key, entry)

    def _model_component(self, construct_id: str, model: ModelArtifacts) -> _ModelComponent:
        stack = Stack.of(self)
        digest = hashlib.sha256()
        for path in model.files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        archive = deterministic_zip(
            [(path.name, path) for path in model.files],
            ARTIFACT_CACHE / digest.hexdigest()[:20] / f"{model.name}-{model.version}.zip",
        )
        # Read ALL: the edge component, another user on the core, reads a dependency's files
        # (recipe reference, "component_dependency_name:artifacts:decompressedPath").
        artifact = self._artifact(f"{construct_id}Artifact", archive, "ALL")
        name = f"com.domicile.model.{model.name}"
        recipe: dict[str, Any] = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentDescription": f"{model.name} {model.version} ({model.description}), sha256 {model.sha256}",
            "ComponentPublisher": "domicile",
            "Manifests": [{"Platform": {"os": "linux"}, "Artifacts": [artifact.recipe_entry], "Lifecycle": {}}],
        }
        version = content_version(model.version, stack.resolve(recipe))
        component = greengrass.CfnComponentVersion(
            self,
            f"{construct_id}Component",
            inline_recipe=stack.to_json_string({**recipe, "ComponentVersion": version}),
        )
        return _ModelComponent(name, version, component, model, unarchived_path(name, artifact.object_key))

    def _code_artifact(self) -> _Artifact:
        """The edge package (our code and its wheels for the devices' Python and CPU) as one ZIP."""
        code_hash = asset_hash(EDGE_PACKAGE, EDGE_RUNTIME, EDGE_ARCHITECTURE)
        out = ARTIFACT_CACHE / f"edge-code-{code_hash[:20]}" / "domicile-edge.zip"
        out.parent.mkdir(parents=True, exist_ok=True)
        # Parallel synths (pytest-xdist) share the cache: one builds, the others wait for it.
        with open(out.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not out.exists():
                staging = Path(tempfile.mkdtemp(prefix="bundle.", dir=out.parent))
                build_asset(staging, EDGE_RUNTIME, EDGE_ARCHITECTURE, EDGE_PACKAGE)
                files = [(str(p.relative_to(staging)), p) for p in staging.rglob("*") if p.is_file()]
                deterministic_zip(files, out)
                shutil.rmtree(staging, ignore_errors=True)
        return self._artifact("EdgeCodeArtifact", out, "OWNER")

    # -- per fleet ---------------------------------------------------------------------------------
    def _environment(self, fleet: Fleet, model: _ModelComponent, split: ModelPlacement | None) -> dict[str, str]:
        environment = {
            "FLEET": fleet.name,
            "JURISDICTION": fleet.jurisdiction,
            "HOME_REGION": fleet.home_region,
            "MODE": fleet.mode.value,
            "MODEL_NAME": model.artifacts.model,
            "MODEL_DIR": model.model_dir,
            "SPOOL_DIR": "{work:path}/spool",  # the component's own work folder (recipe variable work:path)
        }
        if fleet.mode is FleetMode.SPLIT and split is not None and split.cut:
            environment |= {"SPLIT_CUT": split.cut, "SPLIT_ENCODING": split.encoding or "float32"}
        return environment

    def _dependencies(self, model: _ModelComponent, kind: EdgeComponentKind) -> dict[str, dict[str, str]]:
        deps = {
            model.name: {"VersionRequirement": same_major(model.version), "DependencyType": "HARD"},
            NUCLEUS: {"VersionRequirement": f">={MIN_NUCLEUS} <3.0.0", "DependencyType": "SOFT"},
        }
        if kind is EdgeComponentKind.LAMBDA:
            deps |= {
                TOKEN_EXCHANGE: {"VersionRequirement": ">=2.0.0 <3.0.0", "DependencyType": "HARD"},
                LAMBDA_MANAGER: {"VersionRequirement": f">={MIN_LAMBDA_MANAGER} <3.0.0", "DependencyType": "HARD"},
                ROUTER: {"VersionRequirement": ">=2.1.0 <3.0.0", "DependencyType": "HARD"},
            }
        return deps

    def _lambda_component(self, fleet: Fleet, name: str, model: _ModelComponent, env: dict[str, str]) -> Any:
        stack = Stack.of(self)
        source = {
            "LambdaArn": self.version.function_arn,
            "ComponentName": name,
            "ComponentPlatforms": [{"Name": "Linux aarch64", "Attributes": PLATFORM}],
            "ComponentDependencies": self._dependencies(model, EdgeComponentKind.LAMBDA),
            "ComponentLambdaParameters": {
                "Pinned": True,  # long-lived: one process keeps the ORT session, spool and packer
                "TimeoutInSeconds": 30,
                "StatusTimeoutInSeconds": 60,
                "MaxQueueSize": 1000,
                "MaxInstancesCount": 1,
                "InputPayloadEncodingType": "json",
                "EnvironmentVariables": env,
                "EventSources": [{"Topic": LOCAL_INPUT_TOPIC, "Type": "PUB_SUB"}],
                "LinuxProcessParams": {"IsolationMode": "NoContainer"},
            },
        }
        version = content_version("1.0.0", stack.resolve(source))
        component = greengrass.CfnComponentVersion(self, f"{_pascal(fleet.name)}Component")
        component.add_property_override("LambdaFunction", {**source, "ComponentVersion": version})
        return component, version

    def _generic_component(self, fleet: Fleet, name: str, model: _ModelComponent, env: dict[str, str]) -> Any:
        stack = Stack.of(self)
        assert self.code_artifact is not None
        code_dir = unarchived_path(None, self.code_artifact.object_key)
        recipe: dict[str, Any] = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentType": "aws.greengrass.generic",
            "ComponentDescription": f"domicile edge inference for fleet {fleet.name} ({fleet.mode.value}), over IPC",
            "ComponentPublisher": "domicile",
            "ComponentConfiguration": {
                "DefaultConfiguration": {"accessControl": mqttproxy_access_control(fleet, name)}
            },
            "ComponentDependencies": self._dependencies(model, EdgeComponentKind.GENERIC),
            "Manifests": [
                {
                    "Platform": PLATFORM,
                    "Artifacts": [self.code_artifact.recipe_entry],
                    "Lifecycle": {
                        "Setenv": {**env, "PYTHONPATH": code_dir, "PYTHONUNBUFFERED": "1"},
                        "Run": f"python3 -m {GENERIC_ENTRY_POINT}",
                    },
                }
            ],
        }
        version = content_version("1.0.0", stack.resolve(recipe))
        component = greengrass.CfnComponentVersion(
            self,
            f"{_pascal(fleet.name)}Component",
            inline_recipe=stack.to_json_string({**recipe, "ComponentVersion": version}),
        )
        return component, version

    def _deployment_components(
        self, fleet: Fleet, name: str, version: str, model: _ModelComponent
    ) -> dict[str, greengrass.CfnDeployment.ComponentDeploymentSpecificationProperty]:
        spec = greengrass.CfnDeployment.ComponentDeploymentSpecificationProperty
        update = greengrass.CfnDeployment.ComponentConfigurationUpdateProperty

        def pinned(component: str, merge: dict[str, Any] | None = None) -> Any:
            return spec(
                component_version=PINNED_VERSIONS[component],
                configuration_update=update(merge=json.dumps(merge)) if merge else None,
            )

        components = {
            model.name: spec(component_version=model.version),
            name: spec(component_version=version),
            NUCLEUS: pinned(NUCLEUS, NUCLEUS_MERGE),
        }
        if fleet.component is EdgeComponentKind.LAMBDA:
            components |= {
                TOKEN_EXCHANGE: pinned(TOKEN_EXCHANGE),
                LAMBDA_MANAGER: pinned(LAMBDA_MANAGER),
                # greengrasssdk's publish() reaches IoT Core only through a router subscription.
                ROUTER: pinned(ROUTER, router_subscriptions(fleet, name)),
            }
        return components

    def _fleet(self, fleet: Fleet, split: ModelPlacement | None) -> None:
        stack = Stack.of(self)
        model = self.model_components[fleet.name]
        name = f"com.domicile.edge.{fleet.name}"
        env = self._environment(fleet, model, split)
        make = self._lambda_component if fleet.component is EdgeComponentKind.LAMBDA else self._generic_component
        component, version = make(fleet, name, model, env)
        component.node.add_dependency(model.component)
        thing_group = iot.CfnThingGroup(
            self,
            f"{_pascal(fleet.name)}ThingGroup",
            thing_group_name=f"domicile-{fleet.name}",
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description=f"{fleet.name}: {fleet.jurisdiction} fleet homed in {fleet.home_region}",
                attribute_payload=iot.CfnThingGroup.AttributePayloadProperty(
                    attributes={"jurisdiction": fleet.jurisdiction, "home_region": fleet.home_region}
                ),
            ),
        )
        min_executed = abort_min_executed(fleet)
        check_abort_criteria(fleet, min_executed)
        if fleet.devices == 1:
            Annotations.of(self).add_warning_v2(
                "domicile:single-device-fleet",
                f"fleet {fleet.name} has one device: its deployment can roll back but never abort",
            )
        deployment = greengrass.CfnDeployment(
            self,
            f"{_pascal(fleet.name)}Deployment",
            target_arn=thing_group.attr_arn,
            deployment_name=f"domicile-{fleet.name}",
            components=self._deployment_components(fleet, name, version, model),
            deployment_policies=greengrass.CfnDeployment.DeploymentPoliciesProperty(
                failure_handling_policy="ROLLBACK",
                component_update_policy=greengrass.CfnDeployment.DeploymentComponentUpdatePolicyProperty(
                    action="NOTIFY_COMPONENTS", timeout_in_seconds=60
                ),
                configuration_validation_policy=(
                    greengrass.CfnDeployment.DeploymentConfigurationValidationPolicyProperty(timeout_in_seconds=60)
                ),
            ),
            iot_job_configuration=greengrass.CfnDeployment.DeploymentIoTJobConfigurationProperty(
                job_executions_rollout_config=greengrass.CfnDeployment.IoTJobExecutionsRolloutConfigProperty(
                    exponential_rate=greengrass.CfnDeployment.IoTJobExponentialRolloutRateProperty(
                        base_rate_per_minute=5,
                        increment_factor=2,
                        rate_increase_criteria={"NumberOfSucceededThings": 10},
                    ),
                    maximum_per_minute=50,
                ),
                abort_config=greengrass.CfnDeployment.IoTJobAbortConfigProperty(
                    criteria_list=[
                        greengrass.CfnDeployment.IoTJobAbortCriteriaProperty(
                            action="CANCEL",
                            failure_type="ALL",
                            min_number_of_executed_things=min_executed,
                            threshold_percentage=10,
                        )
                    ]
                ),
                timeout_config=greengrass.CfnDeployment.IoTJobTimeoutConfigProperty(in_progress_timeout_in_minutes=30),
            ),
        )
        deployment.node.add_dependency(component)
        policy = iot.CfnPolicy(
            self,
            f"{_pascal(fleet.name)}DevicePolicy",
            policy_name=f"domicile-{fleet.name}-device",
            policy_document=device_policy(stack, fleet, self.role_alias.attr_role_alias_arn),
        )
        self.components[fleet.name] = component
        self.component_versions[fleet.name] = (name, version)
        self.thing_groups[fleet.name] = thing_group
        self.deployments[fleet.name] = deployment
        self.policies[fleet.name] = policy

    def _suppress_nag(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="AWSLambdaBasicExecutionRole on the edge function, which only exists to be imported into "
                    "Greengrass and is never invoked in the cloud.",
                    applies_to=[BASIC_EXECUTION],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Greengrass core devices write to log groups under /aws/greengrass/ (named per component).",
                    applies_to=[
                        {"regex": "/^Resource::arn:<AWS::Partition>:logs:.*:log-group:/aws/greengrass/\\*$/g"},
                    ],
                ),
                NagPackSuppression(
                    id="AwsSolutions-L1",
                    reason="The edge function runs on the devices' own Python 3.12 (Greengrass uses the device "
                    "interpreter), not on Lambda's latest runtime.",
                ),
            ],
            apply_to_children=True,
        )


def device_policy(stack: Stack, fleet: Fleet, role_alias_arn: str) -> dict[str, object]:
    """Each device may connect as itself and publish only under its own topics."""
    thing = "${iot:Connection.Thing.ThingName}"
    arn = f"arn:{stack.partition}:iot:{stack.region}:{stack.account}"
    own_topics = f"{TOPIC_ROOT}/{fleet.jurisdiction}/{fleet.name}/{thing}"
    statements: list[dict[str, object]] = [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/{thing}*"},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{arn}:topic/{own_topics}/*"},
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": f"{arn}:topic/$aws/things/{thing}/*",
        },
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{arn}:topicfilter/$aws/things/{thing}/*"},
        {"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate", "Resource": role_alias_arn},
        {
            # Greengrass data-plane actions take no resource ARNs.
            "Effect": "Allow",
            "Action": [
                "greengrass:GetComponentVersionArtifact",
                "greengrass:ResolveComponentCandidates",
                "greengrass:GetDeploymentConfiguration",
                "greengrass:ListThingGroupsForCoreDevice",
            ],
            "Resource": "*",
        },
    ]
    # A fleet publishes only the kinds its mode produces.
    only = {FleetMode.CLOUD_ONLY: "escalate", FleetMode.SPLIT: "split"}.get(fleet.mode)
    if only:
        statements[1]["Resource"] = f"{arn}:topic/{own_topics}/{only}"
    return {"Version": "2012-10-17", "Statement": statements}


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
