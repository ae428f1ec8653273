"""In-region backups of the aggregation tables: AWS Backup, daily, kept 35 days, in a vault of the region.

Point-in-time recovery already covers the last 35 days of changes; the daily recovery points are
what survives a deleted table. The plan has no copy actions: a copy to another region's vault would
take the jurisdiction's records out of it (domicile.residency.flows reports one as a residency violation).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct


class InRegionBackup(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, tables: Sequence[dynamodb.ITable]
    ) -> None:
        super().__init__(scope, construct_id)
        self.vault = backup.BackupVault(self, "Vault", encryption_key=key, removal_policy=RemovalPolicy.RETAIN)
        self.plan = backup.BackupPlan.daily35_day_retention(self, "Plan", self.vault)
        selection = self.plan.add_selection(
            "Tables", resources=[backup.BackupResource.from_dynamo_db_table(t) for t in tables]
        )
        NagSuppressions.add_resource_suppressions(
            selection,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="AWSBackupServiceRolePolicyForBackup is AWS Backup's own role policy for taking backups.",
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
                    ],
                )
            ],
            apply_to_children=True,
        )
