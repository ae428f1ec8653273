"""Where the region's alarms go: one KMS-encrypted SNS topic in the region, for operators to subscribe to.

Alarms carry no records, but the topic is in-region and encrypted like everything else; CloudWatch
may use the key (see RegionalKey).
"""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct, IConstruct


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", display_name="domicile alarms", master_key=key, enforce_ssl=True)

    def notify_on_every_alarm(self, scope: IConstruct) -> None:
        """Every alarm under `scope` (canary rollbacks, drift) notifies this topic."""
        for alarm in scope.node.find_all():
            if isinstance(alarm, cloudwatch.Alarm):
                alarm.add_alarm_action(actions.SnsAction(self.topic))
