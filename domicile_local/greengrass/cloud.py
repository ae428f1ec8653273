"""The Greengrass service side of the local core: what the synthesized templates create.

- Component versions from `AWS::GreengrassV2::ComponentVersion`: an inline recipe as written, or a
  `LambdaFunction` source turned into the recipe the service generates for it (developer guide,
  "Run AWS Lambda functions"; the shape of a generated recipe: a `aws.greengrass.lambda` component
  with the Lambda launcher, runtimes and token exchange service as dependencies, and the function's
  code as the `greengrass:lambda-artifact.zip` artifact, unpacked).
- A name and version is created once: the same name and version with another recipe is refused
  with 409 ConflictException (CreateComponentVersion; `InlineRecipe` and `LambdaFunction` are
  create-only in CloudFormation, so a stack update cannot change them in place).
- Deployments from `AWS::GreengrassV2::Deployment`, by their target thing group.
- Artifact bytes from the cloud assembly: an `s3://` URI is found in the stack's asset manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domicile.errors import ConfigError
from domicile_local.sim.assembly import ACCOUNT, StackView

LAMBDA_ARTIFACT = "greengrass:lambda-artifact.zip"


class ConflictException(ConfigError):
    """409 from CreateComponentVersion: this name and version already exist with another recipe."""


@dataclass(frozen=True)
class DeploymentDocument:
    name: str
    thing_group: str
    components: dict[str, dict[str, Any]]  # name -> {"version": ..., "merge": {...}}


@dataclass
class GreengrassCloud:
    cdk_out: Path
    recipes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lambda_code: dict[tuple[str, str], Path] = field(default_factory=dict)  # a Lambda component's code folder
    assets: dict[str, Path] = field(default_factory=dict)  # s3 object key -> file in the cloud assembly
    deployments: dict[str, DeploymentDocument] = field(default_factory=dict)  # thing group -> deployment

    def add_stack(self, stack: StackView) -> None:
        self._read_assets(stack)
        for resource in stack.resources("AWS::GreengrassV2::ComponentVersion").values():
            props = resource["Properties"]
            if "InlineRecipe" in props:
                self.create(json.loads(str(stack.resolve(props["InlineRecipe"]))))
            else:
                recipe, code = self._lambda_recipe(stack, props["LambdaFunction"])
                self.create(recipe, code)
        for resource in stack.resources("AWS::GreengrassV2::Deployment").values():
            document = self._deployment(stack, resource["Properties"])
            self.deployments[document.thing_group] = document

    def create(self, recipe: dict[str, Any], lambda_code: Path | None = None) -> None:
        key = (recipe["ComponentName"], recipe["ComponentVersion"])
        known = self.recipes.get(key)
        if known is not None and _digest(known) != _digest(recipe):
            raise ConflictException(
                f"{key[0]} {key[1]}: ConflictException (409): component version {key[1]} already exists with "
                "another recipe; a changed component needs a new ComponentVersion"
            )
        self.recipes[key] = recipe
        if lambda_code is not None:
            self.lambda_code[key] = lambda_code

    def versions_of(self, name: str) -> list[str]:
        return [version for (component, version) in self.recipes if component == name]

    def artifact_file(self, uri: str) -> Path:
        key = uri.removeprefix("s3://").split("/", 1)[-1]
        if key not in self.assets:
            raise ConfigError(f"artifact {uri}: no such object in the cloud assembly's assets (AccessDenied/404)")
        return self.assets[key]

    def _read_assets(self, stack: StackView) -> None:
        manifest = self.cdk_out / f"{stack.name}.assets.json"
        if not manifest.exists():
            return
        for asset in json.loads(manifest.read_text()).get("files", {}).values():
            source = self.cdk_out / asset["source"]["path"]
            for destination in asset.get("destinations", {}).values():
                self.assets[destination["objectKey"]] = source

    def _lambda_recipe(self, stack: StackView, source: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        props = stack.resolve(source)
        version_id = source["LambdaArn"]["Ref"]
        function_id = stack.template["Resources"][version_id]["Properties"]["FunctionName"]["Ref"]
        function = stack.template["Resources"][function_id]
        name = f"{stack.name}-{function_id}"[:64]
        arn = f"arn:aws:lambda:{stack.region}:{ACCOUNT}:function:{name}:1"
        params = props.get("ComponentLambdaParameters", {})
        dependencies = {
            "aws.greengrass.LambdaLauncher": {"VersionRequirement": ">=2.0.0 <3.0.0", "DependencyType": "HARD"},
            "aws.greengrass.TokenExchangeService": {"VersionRequirement": ">=2.0.0 <3.0.0", "DependencyType": "HARD"},
            "aws.greengrass.LambdaRuntimes": {"VersionRequirement": ">=2.0.0 <3.0.0", "DependencyType": "SOFT"},
            **props.get("ComponentDependencies", {}),
        }
        configuration = {
            "lambdaExecutionParameters": {"EnvironmentVariables": params.get("EnvironmentVariables", {})},
            "containerMode": params.get("LinuxProcessParams", {}).get("IsolationMode", "GreengrassContainer"),
            "timeoutInSeconds": params.get("TimeoutInSeconds", 3),
            "maxInstancesCount": params.get("MaxInstancesCount", 100),
            "inputPayloadEncodingType": params.get("InputPayloadEncodingType", "json"),
            "maxQueueSize": params.get("MaxQueueSize", 1000),
            "pinned": params.get("Pinned", True),
            "statusTimeoutInSeconds": params.get("StatusTimeoutInSeconds", 60),
            "pubsubTopics": {
                str(i): {"topic": e["Topic"], "type": e["Type"]} for i, e in enumerate(params.get("EventSources", []))
            },
        }
        platforms = [{k: v for k, v in p.get("Attributes", {}).items()} for p in props.get("ComponentPlatforms", [])]
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": props["ComponentName"],
            "ComponentVersion": props["ComponentVersion"],
            "ComponentType": "aws.greengrass.lambda",
            "ComponentSource": arn,
            "ComponentConfiguration": {"DefaultConfiguration": configuration},
            "ComponentDependencies": dependencies,
            "Manifests": [
                {
                    "Platform": platform,
                    "Lifecycle": {},
                    "Artifacts": [{"Uri": LAMBDA_ARTIFACT, "Unarchive": "ZIP", "Permission": {"Read": "OWNER"}}],
                }
                for platform in platforms or [{}]
            ],
            "Lifecycle": {
                "setenv": {
                    "AWS_GREENGRASS_LAMBDA_ARN": arn,
                    "AWS_GREENGRASS_LAMBDA_FUNCTION_HANDLER": function["Properties"]["Handler"],
                    "AWS_GREENGRASS_LAMBDA_ARTIFACT_PATH": "{artifacts:decompressedPath}/lambda-artifact",
                    "AWS_GREENGRASS_LAMBDA_PARAMS": "{configuration:/lambdaExecutionParameters}",
                    "AWS_GREENGRASS_LAMBDA_RUNTIME": function["Properties"]["Runtime"],
                }
            },
        }
        code = self.cdk_out / function["Metadata"]["aws:asset:path"]
        return recipe, code

    def _deployment(self, stack: StackView, props: dict[str, Any]) -> DeploymentDocument:
        target = props["TargetArn"]["Fn::GetAtt"][0]
        group = stack.template["Resources"][target]["Properties"]["ThingGroupName"]
        components = {}
        for name, spec in stack.resolve(props["Components"]).items():
            update = spec.get("ConfigurationUpdate") or {}
            components[name] = {
                "version": spec["ComponentVersion"],
                "merge": json.loads(update["Merge"]) if update.get("Merge") else {},
            }
        return DeploymentDocument(props.get("DeploymentName", group), group, components)


def _digest(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
