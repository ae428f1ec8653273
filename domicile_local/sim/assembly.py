"""The synthesized templates, read as the simulation needs them, and their AWS resources made in moto.

The template is the truth: queues, tables and buckets are created from their declarations, and
every function's environment is resolved from its `Ref`s and `GetAtt`s to what was created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domicile.config.assembly import read_assembly

ACCOUNT = "123456789012"
# What AWS gives a queue or a function whose template does not say (the SQS CreateQueue and Lambda
# CreateFunction API references: VisibilityTimeout 30 s, Timeout 3 s).
SQS_DEFAULT_VISIBILITY_S = 30
LAMBDA_DEFAULT_TIMEOUT_S = 3


@dataclass
class Function:
    stack: str
    region: str
    logical_id: str
    handler: str
    asset_dir: Path
    environment: dict[str, str]
    name: str
    timeout_s: float = LAMBDA_DEFAULT_TIMEOUT_S  # the template's Timeout (or the run's shortened one)
    reserved_concurrency: int | None = None  # the template's ReservedConcurrentExecutions

    @property
    def key(self) -> str:
        return f"{self.stack}/{self.logical_id}"


@dataclass
class StackView:
    name: str
    region: str
    jurisdiction: str
    template: dict[str, Any]
    physical: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> {"Ref":..., "Arn":...}

    def resources(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template.get("Resources", {}).items() if v.get("Type") == rtype}

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsic functions against what the simulation created."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            intrinsic = _INTRINSICS.get(fn)
            if intrinsic is not None:
                return intrinsic(self, arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def _ref(self, name: str) -> str:
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": self.name}  # fmt: skip
        return pseudo[name] if name in pseudo else self._attr(name, "Ref")

    def _get_att(self, arg: Any) -> str:
        lid, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return self._attr(lid, attr)

    def _join(self, arg: Any) -> str:
        sep, parts = arg
        return str(sep).join(str(self.resolve(p)) for p in parts)

    def _sub(self, arg: Any) -> str:
        text = arg if isinstance(arg, str) else arg[0]
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.resolve({"Ref": m.group(1)} if "." not in m.group(1)
                      else {"Fn::GetAtt": m.group(1).split(".", 1)})), text)  # fmt: skip

    def _split(self, arg: Any) -> list[str]:
        sep, text = arg
        return str(self.resolve(text)).split(sep)

    def _select(self, arg: Any) -> Any:
        index, items = arg
        return self.resolve(items)[int(index)]

    def _attr(self, lid: str, attr: str) -> str:
        made = self.physical.get(lid)
        if made is None or attr not in made:
            return f"unresolved:{lid}.{attr}"
        return made[attr]


# The intrinsic functions the local run resolves (others are left as written).
_INTRINSICS: dict[str, Callable[[StackView, Any], Any]] = {
    "Ref": StackView._ref, "Fn::GetAtt": StackView._get_att, "Fn::Join": StackView._join,
    "Fn::Sub": StackView._sub, "Fn::Split": StackView._split, "Fn::Select": StackView._select,
}  # fmt: skip


def load_stacks(cdk_out: Path) -> list[StackView]:
    return [StackView(s.name, s.region, s.jurisdiction, s.template) for s in read_assembly(cdk_out)]


def queue_props(queue: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = queue.get("Properties", {})
    return props


def _bucket_name(stack: str, lid: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"{stack}-{lid}".lower())[:63].strip("-")


def create_resources(stack: StackView, session: Any, visibility_s: float | None = None) -> None:
    """Make the stack's queues, tables and buckets in moto and record their physical ids.

    Queues keep the template's visibility timeout, so a batch on a slow machine is not redelivered
    sooner than in AWS; `visibility_s` shortens it for a run that wants failed records back quickly.
    """
    sqs = session.client("sqs", region_name=stack.region)
    dynamodb = session.client("dynamodb", region_name=stack.region)
    s3 = session.client("s3", region_name=stack.region)
    queues = stack.resources("AWS::SQS::Queue")
    for lid in queues:
        name = f"{stack.name}-{lid}"[:80]
        declared = queue_props(queues[lid]).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY_S)
        visibility = int(visibility_s if visibility_s is not None else declared)
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility)})["QueueUrl"]
        stack.physical[lid] = {"Ref": url, "Arn": f"arn:aws:sqs:{stack.region}:{ACCOUNT}:{name}", "QueueName": name,
                               "QueueUrl": url}  # fmt: skip
    for lid, queue in queues.items():
        redrive = queue.get("Properties", {}).get("RedrivePolicy")
        if redrive:
            policy = {"deadLetterTargetArn": stack.resolve(redrive["deadLetterTargetArn"]),
                      "maxReceiveCount": str(redrive["maxReceiveCount"])}  # fmt: skip
            sqs.set_queue_attributes(
                QueueUrl=stack.physical[lid]["Ref"], Attributes={"RedrivePolicy": json.dumps(policy)}
            )
    for lid, table in stack.resources("AWS::DynamoDB::Table").items():
        props = table["Properties"]
        name = f"{stack.name}-{lid}"
        dynamodb.create_table(
            TableName=name, KeySchema=props["KeySchema"], AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        stack.physical[lid] = {"Ref": name, "Arn": f"arn:aws:dynamodb:{stack.region}:{ACCOUNT}:table/{name}"}
    for lid in stack.resources("AWS::S3::Bucket"):
        name = _bucket_name(stack.name, lid)
        config = (
            {} if stack.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": stack.region}}
        )
        s3.create_bucket(Bucket=name, **config)
        stack.physical[lid] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
    for lid in stack.resources("AWS::Lambda::Function"):
        name = f"{stack.name}-{lid}"[:64]
        stack.physical[lid] = {"Ref": name, "Arn": f"arn:aws:lambda:{stack.region}:{ACCOUNT}:function:{name}"}
    for lid, alias in stack.resources("AWS::Lambda::Alias").items():
        arn = f"{stack.physical[alias['Properties']['FunctionName']['Ref']]['Arn']}:{alias['Properties']['Name']}"
        stack.physical[lid] = {"Ref": arn, "Arn": arn}
    for lid, rule in stack.resources("AWS::IoT::TopicRule").items():
        name = rule["Properties"].get("RuleName", lid)
        stack.physical[lid] = {"Ref": name, "Arn": f"arn:aws:iot:{stack.region}:{ACCOUNT}:rule/{name}"}


def function_arn(name_or_arn: str, region: str) -> str:
    """The unqualified ARN of a function given by name, ARN, or either with an alias or version qualifier."""
    if name_or_arn.startswith("arn:"):
        return ":".join(name_or_arn.split(":")[:7])
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name_or_arn.split(':')[0]}"


def _our_functions(stack: StackView, cdk_out: Path) -> Iterator[tuple[str, dict[str, Any], str, Path]]:
    """(logical id, resource, handler, asset folder) of each function whose code we bundled."""
    for lid, resource in stack.resources("AWS::Lambda::Function").items():
        asset = resource.get("Metadata", {}).get("aws:asset:path")
        handler = resource["Properties"].get("Handler", "")
        if asset and handler.startswith("functions."):  # not CDK's own custom-resource handlers
            yield lid, resource, handler, cdk_out / asset


def handler_code(stack: StackView, cdk_out: Path) -> dict[str, Path]:
    """Each handler the stack deploys (`package.module.function`), and the asset folder Lambda runs it from."""
    return {handler: asset_dir for _, _, handler, asset_dir in _our_functions(stack, cdk_out)}


def functions_of(stack: StackView, cdk_out: Path) -> dict[str, Function]:
    """Our functions (those with a bundled asset), with their environment resolved."""
    out = {}
    for lid, resource, handler, asset_dir in _our_functions(stack, cdk_out):
        env = {k: str(stack.resolve(v)) for k, v in (resource["Properties"].get("Environment", {}).get("Variables")
                                                     or {}).items()}  # fmt: skip
        if env.get("MODEL_DIR", "").startswith("/var/task/"):
            env["MODEL_DIR"] = str(asset_dir / env["MODEL_DIR"].removeprefix("/var/task/"))
        props = resource["Properties"]
        timeout = float(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S))
        reserved = props.get("ReservedConcurrentExecutions")
        out[lid] = Function(stack.name, stack.region, lid, handler, asset_dir, env, stack.physical[lid]["Ref"],
                            timeout, None if reserved is None else int(reserved))  # fmt: skip
    return out
