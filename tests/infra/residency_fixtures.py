"""Small CDK apps that each break one residency rule (and one that keeps them all).

Each builder returns an App with the residency Aspect applied; synthesizing it must report the
violation as an error naming the construct path, the region and the jurisdiction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_backup as backup
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from domicile.config.topology import Fleet, FleetMode, load_topology
from domicile.models.registry import load_manifest
from infra.app import apply_residency
from infra.aspects.residency import pin_jurisdiction

TOPOLOGY = load_topology()
OTHER = "arn:aws:{service}:us-east-1:123456789012:{rest}"


def _app() -> App:
    return App()


def _stack(app: App, name: str, region: str | None = "eu-central-1", jurisdiction: str = "eu", **kw: object) -> Stack:
    stack = Stack(app, name, env=Environment(region=region) if region else None, **kw)  # type: ignore[arg-type]
    pin_jurisdiction(stack, jurisdiction)
    return stack


def _done(app: App) -> App:
    apply_residency(app, TOPOLOGY)
    return app


def _function(stack: Stack, env: dict[str, str] | None = None) -> lambda_.Function:
    return lambda_.Function(
        stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
        code=lambda_.Code.from_inline("def handler(e, c): pass"), environment=env,
    )  # fmt: skip


def stack_outside() -> App:
    app = _app()
    _stack(app, "EuInVirginia", region="us-east-1")
    return _done(app)


def stack_without_region() -> App:
    app = _app()
    _stack(app, "Anywhere", region=None)
    return _done(app)


def fleet_outside() -> App:
    from infra.constructs.edge_fleet import EdgeFleetProps, EdgeFleets

    app = _app()
    stack = _stack(app, "Edge")
    rogue = Fleet(name="rogue", jurisdiction="eu", home_region="us-east-1", devices=1, mode=FleetMode.HYBRID)
    model = load_manifest().models["digits-edge"]
    key = kms.Key(stack, "Key")
    props = EdgeFleetProps(jurisdiction="eu", fleets=[rogue], models={"rogue": model}, key=key)
    EdgeFleets(stack, "Fleets", props=props)
    return _done(app)


def rule(action: dict[str, Any]) -> Callable[[], App]:
    def build() -> App:
        app = _app()
        stack = _stack(app, "Routing")
        iot.CfnTopicRule(
            stack,
            "Rule",
            topic_rule_payload={"sql": "SELECT * FROM 'domicile/eu/+/+/result'", "actions": [action]},
        )
        return _done(app)

    return build


RULE_ACTIONS: dict[str, dict[str, Any]] = {
    "lambda": {"lambda": {"functionArn": OTHER.format(service="lambda", rest="function:f")}},
    "sqs": {
        "sqs": {"queueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q", "roleArn": "arn:aws:iam::1:role/r"}
    },
    "s3": {"s3": {"bucketName": "somebody-elses-bucket", "key": "k", "roleArn": "arn:aws:iam::1:role/r"}},
    "http": {"http": {"url": "https://collector.example.com/ingest"}},
    "sns": {"sns": {"targetArn": OTHER.format(service="sns", rest="t"), "roleArn": "arn:aws:iam::1:role/r"}},
    "kinesis (by ARN in a role)": {
        "stepFunctions": {"stateMachineName": "m", "roleArn": "arn:aws:iam::1:role/r"},
        "cloudwatchAlarm": {
            "alarmName": "a",
            "roleArn": "arn:aws:iam::1:role/r",
            "stateReason": "r",
            "stateValue": "OK",
        },
        "firehose": {"deliveryStreamName": "d", "roleArn": "arn:aws:iam::1:role/r"},
        "republish": {"topic": "t", "roleArn": "arn:aws:iam::1:role/r"},
        "sqs": {"queueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q", "roleArn": "arn:aws:iam::1:role/r"},
    },
}


def event_source() -> App:
    app = _app()
    stack = _stack(app, "Events")
    fn = _function(stack)
    lambda_.CfnEventSourceMapping(
        stack, "Mapping", function_name=fn.function_name, event_source_arn=OTHER.format(service="sqs", rest="q")
    )
    return _done(app)


def lambda_destination() -> App:
    app = _app()
    stack = _stack(app, "Destinations")
    fn = _function(stack)
    lambda_.CfnEventInvokeConfig(
        stack, "Invoke", function_name=fn.function_name, qualifier="$LATEST",
        destination_config={"onFailure": {"destination": OTHER.format(service="sqs", rest="dlq")}},
    )  # fmt: skip
    return _done(app)


def cross_region_reference() -> App:
    app = _app()
    virginia = _stack(app, "Virginia", region="us-east-1", jurisdiction="us")
    queue = sqs.Queue(virginia, "Queue")
    frankfurt = _stack(app, "Frankfurt", cross_region_references=True)
    _function(frankfurt, {"RESULTS": queue.queue_url})
    return _done(app)


def cross_region_reference_inside_jurisdiction() -> App:
    app = _app()
    dublin = _stack(app, "Dublin", region="eu-west-1")
    queue = sqs.Queue(dublin, "Queue")
    frankfurt = _stack(app, "Frankfurt", cross_region_references=True)
    _function(frankfurt, {"RESULTS": queue.queue_url})
    return _done(app)


def explicit_arn() -> App:
    app = _app()
    stack = _stack(app, "Explicit")
    _function(stack, {"ALERTS": OTHER.format(service="sns", rest="alerts")})
    return _done(app)


def s3_replication_unprovable() -> App:
    app = _app()
    stack = _stack(app, "Replicated")
    s3.CfnBucket(
        stack, "Bucket", versioning_configuration={"status": "Enabled"},
        replication_configuration={"role": "arn:aws:iam::1:role/r", "rules": [
            {"status": "Enabled", "destination": {"bucket": "arn:aws:s3:::backup-anywhere"}}]},
    )  # fmt: skip
    return _done(app)


def dynamodb_replica() -> App:
    app = _app()
    stack = _stack(app, "Global")
    dynamodb.TableV2(
        stack,
        "Table",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        replicas=[dynamodb.ReplicaTableProps(region="us-east-1")],
    )
    return _done(app)


def backup_copy() -> App:
    app = _app()
    stack = _stack(app, "Backups")
    plan = backup.BackupPlan(stack, "Plan")
    plan.add_rule(
        backup.BackupPlanRule(
            copy_actions=[
                backup.BackupPlanCopyActionProps(
                    destination_backup_vault=backup.BackupVault.from_backup_vault_arn(
                        stack, "Elsewhere", "arn:aws:backup:us-east-1:123456789012:backup-vault:copies"
                    )
                )
            ]
        )
    )
    return _done(app)


def log_subscription() -> App:
    app = _app()
    stack = _stack(app, "Logs")
    group = logs.LogGroup(stack, "Group")
    logs.CfnSubscriptionFilter(
        stack, "Subscription", log_group_name=group.log_group_name, filter_pattern="",
        destination_arn=OTHER.format(service="logs", rest="destination:central"),
    )  # fmt: skip
    return _done(app)


def log_destination() -> App:
    app = _app()
    stack = _stack(app, "LogDestination")
    logs.CfnDestination(
        stack, "Destination", destination_name="central", role_arn="arn:aws:iam::1:role/r",
        target_arn=OTHER.format(service="kinesis", rest="stream/central"),
    )  # fmt: skip
    return _done(app)


def greengrass_artifact_elsewhere() -> App:
    from aws_cdk import aws_greengrassv2 as greengrass

    app = _app()
    stack = _stack(app, "Components")
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.model",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Artifacts": [{"Uri": "s3://cdk-hnb659fds-assets-123456789012-us-east-1/model.onnx"}]}],
    }
    greengrass.CfnComponentVersion(stack, "Model", inline_recipe=stack.to_json_string(recipe))
    return _done(app)
