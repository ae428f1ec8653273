"""Canary releases of a cloud function: a `live` alias shifted by CodeDeploy, rolled back on alarms.

Every change to the function (code, or a model: the registry's deployed versions are in its
environment, and the models in its asset) publishes a new version. CodeDeploy sends 10% of the
alias' traffic to it for 5 minutes, then all of it; if the alias' errors or its p99 duration alarm
during the deployment, CodeDeploy shifts everything back to the previous version. Callers (event
sources, IoT rules, the Function URL, S3 notifications) invoke the alias, never $LATEST.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

ALIAS = "live"
DEPLOYMENT_CONFIG = codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES
P99_ALARM_MS = 2000.0  # well under the 30 s timeout: a canary this slow is worse than the version it replaces


class CanaryRelease(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, function: lambda_.Function, p99_alarm_ms: float = P99_ALARM_MS
    ) -> None:
        super().__init__(scope, construct_id)
        self.alias = lambda_.Alias(self, "Alias", alias_name=ALIAS, version=function.current_version)
        self.errors_alarm = self.alias.metric_errors(period=Duration.minutes(1), statistic="Sum").create_alarm(
            self,
            "Errors",
            alarm_description=f"{function.node.id}: invocation errors during a rollout",
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.latency_alarm = self.alias.metric_duration(period=Duration.minutes(1), statistic="p99").create_alarm(
            self,
            "P99Latency",
            alarm_description=f"{function.node.id}: p99 duration over {p99_alarm_ms:.0f} ms during a rollout",
            threshold=p99_alarm_ms,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "Deployment",
            alias=self.alias,
            deployment_config=DEPLOYMENT_CONFIG,
            alarms=[self.errors_alarm, self.latency_alarm],
            auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, deployment_in_alarm=True),
        )
        NagSuppressions.add_resource_suppressions(
            self.deployment_group,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="AWSCodeDeployRoleForLambdaLimited is CodeDeploy's own role policy for shifting alias "
                    "traffic; it only reaches functions and alarms.",
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited"
                    ],
                )
            ],
            apply_to_children=True,
        )
