"""Where data can go: the data flows a CloudFormation resource declares, and the region of each.

Works on template-shaped resources (`{"Type": ..., "Properties": ...}` with intrinsic functions),
so the synth-time Aspect (on each resource as it will be rendered) and `domicile residency report`
(on the synthesized templates) share one reading of what leaves a region.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

GLOBAL = "global"  # the target has no region (e.g. an IAM ARN); it is not data storage
UNKNOWN = "unknown"  # the region cannot be proven from the template: treated as not allowed
EXTERNAL = "outside-aws"  # an HTTP endpoint, a third party: never allowed

_ARN = re.compile(r"arn:aws[a-z-]*:(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):")
_ENDPOINT = re.compile(r"https?://(?:[a-z0-9-]+\.)*?(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com")
# CDK's bootstrap asset bucket: cdk-<qualifier>-assets-<account>-<region>
_ASSET_BUCKET = re.compile(r"cdk-[a-z0-9]+-assets-(?:[0-9]+|\$\{AWS::AccountId\})-(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)")
_S3_URI = re.compile(r"s3://(?P<bucket>[^/\"]+)/")
_SAME_REGION_TOKEN = "${AWS::Region}"
JOIN_ARGS = 2  # Fn::Join: [separator, parts]


@dataclass(frozen=True)
class Flow:
    source: str  # the resource's logical id (or construct path)
    kind: str  # what carries the data: "iot rule action", "event source", ...
    target: str  # what it points at, as written
    region: str  # a region name, GLOBAL, UNKNOWN or EXTERNAL

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "kind": self.kind, "target": self.target, "region": self.region}


# Ref/GetAtt/ImportValue -> the region it points into (domicile.residency.references.References).
RefRegion = Callable[[dict[str, Any]], str]
Region = Callable[[Any], str]  # a property value -> the region it points into


def allowed_flow(flow: Flow, allowed_regions: tuple[str, ...]) -> bool:
    """The verdict, for the Aspect and the report alike: a flow stays in the allowed regions or has none."""
    return flow.region == GLOBAL or flow.region in allowed_regions


def _literal_region(text: str, stack_region: str) -> str | None:
    if _SAME_REGION_TOKEN in text:
        return stack_region
    for pattern in (_ARN, _ENDPOINT, _ASSET_BUCKET):
        match = pattern.search(text)
        if match:
            return match.group("region") or GLOBAL
    return None


def region_of(value: Any, stack_region: str, ref_region: RefRegion) -> str:
    """The region a property value points into."""
    if isinstance(value, str):
        return _literal_region(value, stack_region) or UNKNOWN
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref" and arg == "AWS::Region":
            return stack_region
        if fn in ("Ref", "Fn::GetAtt", "Fn::ImportValue"):
            return ref_region(value)
        if fn == "Fn::Join":
            parts = arg[1]
            if any(p == {"Ref": "AWS::Region"} for p in parts):
                return stack_region
            literal = "".join(p for p in parts if isinstance(p, str))
            found = _literal_region(literal, stack_region)
            if found:
                return found
            refs = [region_of(p, stack_region, ref_region) for p in parts if isinstance(p, dict)]
            return refs[0] if refs and all(r == refs[0] for r in refs) else UNKNOWN
        if fn == "Fn::Sub":
            template = arg if isinstance(arg, str) else arg[0]
            return _literal_region(template, stack_region) or UNKNOWN
    return UNKNOWN


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _rule_flows(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    payload = props.get("TopicRulePayload", {})
    actions = [("iot rule action", a) for a in payload.get("Actions", [])]
    if payload.get("ErrorAction"):
        actions.append(("iot rule error action", payload["ErrorAction"]))
    for kind, action in actions:
        for name, spec in action.items():
            if name == "Lambda":
                yield Flow(lid, f"{kind} (lambda)", _show(spec.get("FunctionArn")), region(spec.get("FunctionArn")))
            elif name == "Sqs":
                yield Flow(lid, f"{kind} (sqs)", _show(spec.get("QueueUrl")), region(spec.get("QueueUrl")))
            elif name == "Sns":
                yield Flow(lid, f"{kind} (sns)", _show(spec.get("TargetArn")), region(spec.get("TargetArn")))
            elif name == "S3":
                # A bucket name carries no region: only a bucket this stack declares is provably in-region.
                bucket = spec.get("BucketName")
                where = region(bucket) if isinstance(bucket, dict) else UNKNOWN
                yield Flow(lid, f"{kind} (s3)", _show(bucket), where)
            elif name in ("Http",):
                yield Flow(lid, f"{kind} (http)", _show(spec.get("Url")), EXTERNAL)
            elif name == "Republish":
                yield Flow(lid, f"{kind} (republish)", _show(spec.get("Topic")), region(None))  # this region's broker
            else:
                # Kinesis, Firehose, DynamoDB, CloudWatch, Step Functions, ...: named by name or by ARN.
                arns = [v for k, v in spec.items() if k.endswith("Arn") and k != "RoleArn"]
                target = arns[0] if arns else next((v for k, v in spec.items() if k.endswith("Name")), None)
                where = region(target) if arns else region(None)  # by name: resolved in the rule's own region
                yield Flow(lid, f"{kind} ({name.lower()})", _show(target), where)


def _artifact_flows(lid: str, recipe: Any, region: Region) -> Iterator[Flow]:
    """Artifact URIs of an inline recipe: a literal string, or CDK's Fn::Join with the bucket as a token."""
    if isinstance(recipe, str):
        for match in _S3_URI.finditer(recipe):
            yield Flow(lid, "greengrass artifact", match.group(0), region(match.group("bucket")))
        return
    parts = _get(recipe, "Fn::Join")
    if not isinstance(parts, list) or len(parts) != JOIN_ARGS:
        yield Flow(lid, "greengrass artifact", _show(recipe), UNKNOWN)
        return
    pieces = parts[1]
    for i, piece in enumerate(pieces):
        if isinstance(piece, str) and piece.endswith("s3://") and i + 1 < len(pieces):
            bucket = pieces[i + 1]
            yield Flow(lid, "greengrass artifact", "s3://" + _show(bucket), region(bucket))
        elif isinstance(piece, str):
            for match in _S3_URI.finditer(piece):
                yield Flow(lid, "greengrass artifact", match.group(0), region(match.group("bucket")))


def _generic_strings(lid: str, props: Any, stack_region: str) -> Iterator[Flow]:
    """Any literal ARN or regional endpoint anywhere in the properties."""
    text = json.dumps(props)
    for pattern in (_ARN, _ENDPOINT):
        for match in pattern.finditer(text):
            found = match.group("region")
            if found and found != stack_region:
                yield Flow(lid, "explicit reference", text[match.start() : match.start() + 100].split('"')[0], found)


def _event_source(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    if props.get("EventSourceArn"):
        yield Flow(lid, "event source", _show(props["EventSourceArn"]), region(props["EventSourceArn"]))


def _lambda_destinations(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    for outcome in ("OnSuccess", "OnFailure"):
        dest = _get(props, "DestinationConfig", outcome, "Destination")
        if dest is not None:
            yield Flow(lid, f"lambda destination ({outcome})", _show(dest), region(dest))


def _lambda_function(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    dlq = _get(props, "DeadLetterConfig", "TargetArn")
    if dlq is not None:
        yield Flow(lid, "lambda dead-letter queue", _show(dlq), region(dlq))
    for name, value in (_get(props, "Environment", "Variables") or {}).items():
        if isinstance(value, dict) and next(iter(value)) in ("Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::Join"):
            where = region(value)
            if where not in (UNKNOWN, GLOBAL):
                yield Flow(lid, f"environment {name}", _show(value), where)


def _s3_replication(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    for rule in _get(props, "ReplicationConfiguration", "Rules") or []:
        dest = _get(rule, "Destination", "Bucket")
        # Bucket ARNs carry no region: only a bucket declared in a known stack can be placed.
        yield Flow(lid, "s3 replication", _show(dest), region(dest) if isinstance(dest, dict) else UNKNOWN)


def _dynamodb_replicas(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    for replica in props.get("Replicas", []):
        yield Flow(lid, "dynamodb replica", str(replica.get("Region")), str(replica.get("Region")))


def _dynamodb_stream(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    stream = _get(props, "KinesisStreamSpecification", "StreamArn")
    if stream is not None:
        yield Flow(lid, "dynamodb kinesis stream", _show(stream), region(stream))


def _one(kind: str, key: str, optional: bool = False) -> Callable[[str, dict[str, Any], Region], Iterator[Flow]]:
    """A resource whose property `key` is where its data goes (if `optional`, none without it)."""

    def flows(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
        if not optional or props.get(key) is not None:
            yield Flow(lid, kind, _show(props.get(key)), region(props.get(key)))

    return flows


def _backup_copies(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    for rule in _get(props, "BackupPlan", "BackupPlanRule") or []:
        for action in rule.get("CopyActions") or []:
            dest = action.get("DestinationBackupVaultArn")
            yield Flow(lid, "backup copy", _show(dest), region(dest))


def _component_artifacts(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    if "InlineRecipe" in props:
        yield from _artifact_flows(lid, props["InlineRecipe"], region)


def _bucket_notifications(lid: str, props: dict[str, Any], region: Region) -> Iterator[Flow]:
    config = props.get("NotificationConfiguration") or {}
    for key, arn_key in (("LambdaFunctionConfigurations", "LambdaFunctionArn"), ("QueueConfigurations", "QueueArn"),
                         ("TopicConfigurations", "TopicArn")):  # fmt: skip
        for item in config.get(key, []):
            yield Flow(lid, "s3 notification", _show(item.get(arn_key)), region(item.get(arn_key)))


# Resource type -> the flows it declares; every other resource is read for literal ARNs and endpoints only.
_READERS: dict[str, Callable[[str, dict[str, Any], Region], Iterator[Flow]]] = {
    "AWS::IoT::TopicRule": _rule_flows,
    "AWS::Lambda::EventSourceMapping": _event_source,
    "AWS::Lambda::EventInvokeConfig": _lambda_destinations,
    "AWS::Lambda::Function": _lambda_function,
    "AWS::S3::Bucket": _s3_replication,
    "AWS::DynamoDB::GlobalTable": _dynamodb_replicas,
    "AWS::DynamoDB::Table": _dynamodb_stream,
    "AWS::Logs::SubscriptionFilter": _one("log subscription", "DestinationArn"),
    "AWS::Logs::Destination": _one("log destination", "TargetArn"),
    "AWS::SNS::Subscription": _one("sns subscription", "Endpoint", optional=True),
    "AWS::Backup::BackupPlan": _backup_copies,
    "AWS::GreengrassV2::ComponentVersion": _component_artifacts,
    "Custom::S3BucketNotifications": _bucket_notifications,
}


def flows_of(lid: str, resource: dict[str, Any], stack_region: str, ref_region: RefRegion) -> list[Flow]:
    """Every data flow one resource declares."""
    props = resource.get("Properties") or {}

    def region(value: Any) -> str:
        return stack_region if value is None else region_of(value, stack_region, ref_region)

    reader = _READERS.get(resource.get("Type", ""))
    flows = list(reader(lid, props, region)) if reader else []
    # Catch-all for literal ARNs and endpoints, except those a specific flow already names.
    named = [f.target for f in flows]
    flows += [g for g in _generic_strings(lid, props, stack_region) if not any(g.target in t for t in named)]
    return flows


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))[:120]
