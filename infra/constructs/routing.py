"""IoT Core topic rules of one jurisdiction in its home region, with an in-region error DLQ.

- `domicile/<jur>/+/+/result`   -> the results queue (aggregation);
- `domicile/<jur>/+/+/escalate` -> by each fleet's `cloud_path`: the request queue (queued: the batch
  function answers up to its batch size in one run) or the escalation function (direct: one per case);
- `domicile/<jur>/+/+/split`    -> the same, with the split-tail function as the direct path (where
  split fleets live).
When the fleets of a kind take different paths, each fleet gets its own rule on its own topics
(`domicile/<jur>/<fleet>/+/<kind>`). A rule whose action fails sends the message, with the error, to
the routing DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from domicile.config.topology import CloudPath
from domicile.wire.topics import ROOT, topic_filter


@dataclass(frozen=True)
class RoutingProps:
    jurisdiction: str
    results_queue: sqs.IQueue
    escalate_function: lambda_.IFunction
    error_queue: sqs.IQueue
    request_queue: sqs.IQueue
    split_function: lambda_.IFunction | None = None
    # kind ("escalate", "split") -> path -> the fleets homed here that take it
    paths: dict[str, dict[CloudPath, list[str]]] = field(default_factory=dict)


class Routing(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: RoutingProps) -> None:
        super().__init__(scope, construct_id)
        role = iam.Role(self, "RuleRole", assumed_by=iam.ServicePrincipal("iot.amazonaws.com"))
        props.results_queue.grant_send_messages(role)
        props.request_queue.grant_send_messages(role)
        props.error_queue.grant_send_messages(role)
        error_action = iot.CfnTopicRule.ActionProperty(
            sqs=iot.CfnTopicRule.SqsActionProperty(queue_url=props.error_queue.queue_url, role_arn=role.role_arn)
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="kms:GenerateDataKey*/ReEncrypt* are the action groups CDK grants for sending to our "
                    "KMS-encrypted queues, on our own key only.",
                    applies_to=["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"],
                )
            ],
            apply_to_children=True,
        )
        prefix = f"domicile_{props.jurisdiction}".replace("-", "_")

        def rule(kind: str, action: iot.CfnTopicRule.ActionProperty, fleet: str | None = None) -> iot.CfnTopicRule:
            own = f"{ROOT}/{props.jurisdiction}/{fleet}/+/{kind}"  # one fleet's topics
            topics = own if fleet else topic_filter(props.jurisdiction, kind)
            suffix = f"_{fleet.replace('-', '_')}" if fleet else ""
            return iot.CfnTopicRule(
                self,
                f"{kind.capitalize()}Rule{''.join(p.capitalize() for p in fleet.split('-')) if fleet else ''}",
                rule_name=f"{prefix}_{kind}{suffix}",
                topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                    sql=f"SELECT * FROM '{topics}'",
                    aws_iot_sql_version="2016-03-23",
                    rule_disabled=False,
                    description=f"{kind} envelopes of {f'fleet {fleet}' if fleet else 'jurisdiction'} "
                    f"{'' if fleet else props.jurisdiction}".strip(),
                    actions=[action],
                    error_action=error_action,
                ),
            )

        self.result_rule = rule(
            "result",
            iot.CfnTopicRule.ActionProperty(
                sqs=iot.CfnTopicRule.SqsActionProperty(queue_url=props.results_queue.queue_url, role_arn=role.role_arn)
            ),
        )
        queued = iot.CfnTopicRule.ActionProperty(
            sqs=iot.CfnTopicRule.SqsActionProperty(queue_url=props.request_queue.queue_url, role_arn=role.role_arn)
        )

        def direct(kind: str, function: lambda_.IFunction, fleet: str | None) -> iot.CfnTopicRule:
            topic_rule = rule(
                kind, iot.CfnTopicRule.ActionProperty(
                    lambda_=iot.CfnTopicRule.LambdaActionProperty(function_arn=function.function_arn)
                ), fleet,
            )  # fmt: skip
            function.add_permission(
                f"InvokedBy{topic_rule.node.id}",
                principal=iam.ServicePrincipal("iot.amazonaws.com"),
                source_arn=topic_rule.attr_arn,
                source_account=Stack.of(self).account,
            )
            return topic_rule

        def route(kind: str, function: lambda_.IFunction, paths: dict[CloudPath, list[str]]) -> list[iot.CfnTopicRule]:
            if len(paths) <= 1:  # one path for every fleet: one rule for the jurisdiction's topics
                path = next(iter(paths), CloudPath.QUEUED)
                return [direct(kind, function, None) if path is CloudPath.DIRECT else rule(kind, queued)]
            return [direct(kind, function, fleet) if path is CloudPath.DIRECT else rule(kind, queued, fleet)
                    for path, fleets in sorted(paths.items()) for fleet in fleets]  # fmt: skip

        self.escalate_rules = route("escalate", props.escalate_function, props.paths.get("escalate", {}))
        self.split_rules = (
            route("split", props.split_function, props.paths.get("split", {})) if props.split_function else []
        )
