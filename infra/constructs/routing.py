"""IoT Core topic rules of one jurisdiction in its home region, with an in-region error DLQ.

- `domicile/<jur>/+/+/result`   -> the results queue (aggregation);
- `domicile/<jur>/+/+/escalate` -> the escalation function (cloud model);
- `domicile/<jur>/+/+/split`    -> the split-tail function (where split fleets live).
A rule whose action fails sends the message, with the error, to the routing DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from domicile.wire.topics import topic_filter


@dataclass(frozen=True)
class RoutingProps:
    jurisdiction: str
    results_queue: sqs.IQueue
    escalate_function: lambda_.IFunction
    error_queue: sqs.IQueue
    split_function: lambda_.IFunction | None = None


class Routing(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: RoutingProps) -> None:
        super().__init__(scope, construct_id)
        role = iam.Role(self, "RuleRole", assumed_by=iam.ServicePrincipal("iot.amazonaws.com"))
        props.results_queue.grant_send_messages(role)
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

        def rule(kind: str, action: iot.CfnTopicRule.ActionProperty) -> iot.CfnTopicRule:
            return iot.CfnTopicRule(
                self,
                f"{kind.capitalize()}Rule",
                rule_name=f"{prefix}_{kind}",
                topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                    sql=f"SELECT * FROM '{topic_filter(props.jurisdiction, kind)}'",
                    aws_iot_sql_version="2016-03-23",
                    rule_disabled=False,
                    description=f"{kind} envelopes of jurisdiction {props.jurisdiction}",
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

        def invoke(kind: str, function: lambda_.IFunction) -> iot.CfnTopicRule:
            topic_rule = rule(
                kind, iot.CfnTopicRule.ActionProperty(
                    lambda_=iot.CfnTopicRule.LambdaActionProperty(function_arn=function.function_arn)
                ),
            )  # fmt: skip
            function.add_permission(
                f"InvokedBy{kind.capitalize()}Rule",
                principal=iam.ServicePrincipal("iot.amazonaws.com"),
                source_arn=topic_rule.attr_arn,
                source_account=Stack.of(self).account,
            )
            return topic_rule

        self.escalate_rule = invoke("escalate", props.escalate_function)
        self.split_rule = invoke("split", props.split_function) if props.split_function else None
