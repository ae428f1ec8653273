"""Greengrass v2 edge fleets of one home region.

Per region: the edge inference Lambda (packaged for the devices' Python and CPU) and a published
version; the model component (inline recipe, artifacts in the region's CDK asset bucket, with their
SHA-256 digests); a token exchange role and its role alias, reading only those artifacts.
Per fleet: a Lambda-function component (pinned, long-lived) configured for the fleet, a thing
group, a deployment to it (staged rollout, timeout, abort criteria, ROLLBACK on failure), and an
IoT policy that lets each device publish only on its own topics.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as assets
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from domicile.edge.topics import ROOT as TOPIC_ROOT
from domicile.errors import ConfigError
from domicile.manifest import MANIFEST_FILE, ModelEntry, load_manifest
from domicile.split.model import load_split_manifest
from domicile.topology import Fleet, FleetMode, ModelPlacement
from infra.bundling import EDGE_PACKAGE, PROJECT_ROOT, asset_hash, python_function_code
from infra.constructs.nag import BASIC_EXECUTION
from infra.constructs.storage import function_log_group

# The devices' Python (Greengrass runs Lambda components with the device's own interpreter).
EDGE_RUNTIME = lambda_.Runtime.PYTHON_3_12
EDGE_ARCHITECTURE = lambda_.Architecture.ARM_64
GREENGRASS_ROOT = "/greengrass/v2"
LOCAL_INPUT_TOPIC = "domicile/local/+/input"


def artifact_digest(path: Path) -> str:
    """Greengrass recipe digests are the base64 of the artifact's SHA-256."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def component_version(model: ModelArtifacts) -> str:
    """A new version whenever the code or the model changes (component versions are immutable)."""
    code = int(asset_hash(EDGE_PACKAGE, EDGE_RUNTIME, EDGE_ARCHITECTURE)[:7], 16)
    return f"{model.version.split('.')[0]}.{int(model.sha256[:4], 16)}.{code}"


@dataclass(frozen=True)
class ModelArtifacts:
    """What one model component ships to devices: a model file and the manifest that vouches for it."""

    name: str
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
        return cls(model.name, model.version, model.sha256, model.description, (*files, model_dir / MANIFEST_FILE))

    @classmethod
    def split_head(cls, placement: ModelPlacement, split_dir: Path) -> ModelArtifacts:
        """The head of the split model at the topology's cut; synth fails if it was never partitioned."""
        manifest = load_split_manifest(split_dir)
        key = f"{placement.cut}/head"
        if key not in manifest.parts:
            raise ConfigError(
                f"models.{placement.name}.cut: {split_dir / 'manifest.json'} has no head at {placement.cut!r}; "
                f"run `domicile split partition --cut {placement.cut}`"
            )
        head = manifest.parts[key]
        files = (split_dir / head.file, split_dir / "manifest.json")
        description = f"head of {manifest.name} up to {placement.cut}"
        return cls(f"{manifest.name}-head", manifest.version, head.sha256, description, files)


@dataclass(frozen=True)
class EdgeFleetProps:
    jurisdiction: str
    fleets: list[Fleet]
    model: ModelEntry
    key: kms.IKey  # the region's key (the edge function's log group)
    split: ModelPlacement | None = None  # the split model, for fleets in split mode
    model_dir: Path = PROJECT_ROOT / "models"


class EdgeFleets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: EdgeFleetProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        model = props.model
        self.fleets = list(props.fleets)

        # --- model components: artifacts in this region's asset bucket, verified by digest
        self.token_exchange_role = iam.Role(
            self, "TokenExchangeRole", assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com")
        )
        edge = self._model_component("Model", ModelArtifacts.edge(model, props.model_dir))
        self.model_components: dict[FleetMode, _ModelComponent] = dict.fromkeys(FleetMode, edge)
        split_fleets = [f.name for f in props.fleets if f.mode is FleetMode.SPLIT]
        if split_fleets:
            if props.split is None:
                raise ConfigError(f"fleets.{split_fleets[0]}.mode: split needs a model with role 'split'")
            head = ModelArtifacts.split_head(props.split, props.model_dir / "split")
            self.model_components[FleetMode.SPLIT] = self._model_component("SplitHead", head)
        self.model_component = edge.component
        self.model_component_name = edge.name
        self.model_component_version = edge.version

        # --- the edge inference Lambda, packaged for the devices; never invoked in the cloud
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
        self.version = self.function.current_version

        # --- token exchange: what a core device may do with AWS credentials (fetch our artifacts, log)
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

        self.components: dict[str, greengrass.CfnComponentVersion] = {}
        self.thing_groups: dict[str, iot.CfnThingGroup] = {}
        self.deployments: dict[str, greengrass.CfnDeployment] = {}
        self.policies: dict[str, iot.CfnPolicy] = {}
        for fleet in props.fleets:
            self._fleet(fleet, props.split)

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
                    reason="Greengrass core devices write to log groups under /aws/greengrass/ (named per component) "
                    "and read the asset objects of this stack; CDK grants s3:GetObject*/List* on those objects only.",
                    applies_to=[
                        "Action::s3:GetObject*",
                        "Action::s3:GetBucket*",
                        "Action::s3:List*",
                        {"regex": "/^Resource::arn:<AWS::Partition>:s3:::cdk-.*-assets-.*/\\*$/g"},
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

    def _model_component(self, construct_id: str, model: ModelArtifacts) -> _ModelComponent:
        stack = Stack.of(self)
        artifacts = []
        for i, path in enumerate(model.files):
            asset = assets.Asset(self, f"{construct_id}Artifact{i}" if i else f"{construct_id}Artifact", path=str(path))
            asset.grant_read(self.token_exchange_role)
            artifacts.append({
                "Uri": f"s3://{asset.s3_bucket_name}/{asset.s3_object_key}",
                "Digest": artifact_digest(path),
                "Algorithm": "SHA-256",
                "Permission": {"Read": "ALL"},
            })  # fmt: skip
        name = f"com.domicile.model.{model.name}"
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": model.version,
            "ComponentDescription": f"{model.name} {model.version} ({model.description}), sha256 {model.sha256}",
            "ComponentPublisher": "domicile",
            "Manifests": [{"Platform": {"os": "linux"}, "Artifacts": artifacts, "Lifecycle": {}}],
        }
        component = greengrass.CfnComponentVersion(
            self, f"{construct_id}Component", inline_recipe=stack.to_json_string(recipe)
        )
        # Greengrass keeps S3 artifacts under their object key's file name.
        return _ModelComponent(name, model.version, component, model,
                               f"{GREENGRASS_ROOT}/packages/artifacts/{name}/{model.version}")  # fmt: skip

    def _fleet(self, fleet: Fleet, split: ModelPlacement | None) -> None:
        stack = Stack.of(self)
        model = self.model_components[fleet.mode]
        name = f"com.domicile.edge.{fleet.name}"
        version = component_version(model.artifacts)
        environment = {
            "FLEET": fleet.name,
            "JURISDICTION": fleet.jurisdiction,
            "HOME_REGION": fleet.home_region,
            "MODE": fleet.mode.value,
            "MODEL_NAME": model.artifacts.name,
            "MODEL_DIR": model.artifact_dir,
            "SPOOL_DIR": f"{GREENGRASS_ROOT}/work/{name}/spool",
        }
        if fleet.mode is FleetMode.SPLIT and split is not None and split.cut:
            environment |= {"SPLIT_CUT": split.cut, "SPLIT_ENCODING": split.encoding or "float32"}
        component = greengrass.CfnComponentVersion(
            self,
            f"{_pascal(fleet.name)}Component",
            lambda_function=greengrass.CfnComponentVersion.LambdaFunctionRecipeSourceProperty(
                lambda_arn=self.version.function_arn,
                component_name=name,
                component_version=version,
                component_platforms=[
                    greengrass.CfnComponentVersion.ComponentPlatformProperty(
                        name="Linux aarch64", attributes={"os": "linux", "architecture": "aarch64"}
                    )
                ],
                component_dependencies={
                    model.name: greengrass.CfnComponentVersion.ComponentDependencyRequirementProperty(
                        version_requirement=f">={model.version} <{int(model.version.split('.')[0]) + 1}.0.0",
                        dependency_type="HARD",
                    ),
                    "aws.greengrass.TokenExchangeService": (
                        greengrass.CfnComponentVersion.ComponentDependencyRequirementProperty(
                            version_requirement=">=2.0.0 <3.0.0", dependency_type="HARD"
                        )
                    ),
                },
                component_lambda_parameters=greengrass.CfnComponentVersion.LambdaExecutionParametersProperty(
                    pinned=True,  # long-lived: one process keeps the ORT session, spool and packer
                    timeout_in_seconds=30,
                    status_timeout_in_seconds=60,
                    max_queue_size=1000,
                    max_instances_count=1,
                    input_payload_encoding_type="json",
                    environment_variables=environment,
                    event_sources=[
                        greengrass.CfnComponentVersion.LambdaEventSourceProperty(
                            topic=LOCAL_INPUT_TOPIC, type="PUB_SUB"
                        )
                    ],
                    linux_process_params=greengrass.CfnComponentVersion.LambdaLinuxProcessParamsProperty(
                        isolation_mode="NoContainer"
                    ),
                ),
            ),
        )
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
        deployment = greengrass.CfnDeployment(
            self,
            f"{_pascal(fleet.name)}Deployment",
            target_arn=thing_group.attr_arn,
            deployment_name=f"domicile-{fleet.name}",
            components={
                model.name: greengrass.CfnDeployment.ComponentDeploymentSpecificationProperty(
                    component_version=model.version
                ),
                name: greengrass.CfnDeployment.ComponentDeploymentSpecificationProperty(component_version=version),
            },
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
                            min_number_of_executed_things=5,
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
        self.thing_groups[fleet.name] = thing_group
        self.deployments[fleet.name] = deployment
        self.policies[fleet.name] = policy


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


@dataclass(frozen=True)
class _ModelComponent:
    name: str
    version: str
    component: greengrass.CfnComponentVersion
    artifacts: ModelArtifacts
    artifact_dir: str


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
