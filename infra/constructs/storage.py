"""In-region, KMS-encrypted storage: the region's key, a data bucket (with access logs), queues with
DLQs, and the functions' log groups."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.aspects.checkov import skip_checkov


class RegionalKey(Construct):
    """The customer-managed key of one region's data (rotated yearly)."""

    def __init__(self, scope: Construct, construct_id: str, *, description: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=description,
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        stack = Stack.of(self)
        # CloudWatch Logs encrypts our log groups with this key: only for log groups of this account
        # and region (the encryption context names the log group). CDK does not add this itself.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:{stack.region}:"
                        f"{stack.account}:log-group:*"
                    }
                },
            )
        )
        # CloudWatch alarms publish to the region's alarm topic, which this key encrypts.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )


def function_log_group(
    scope: Construct, construct_id: str, *, key: kms.IKey, retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
) -> logs.LogGroup:
    """A function's log group, in its region, encrypted with the region's key."""
    return logs.LogGroup(
        scope,
        construct_id,
        encryption_key=key,
        retention=retention,
        removal_policy=RemovalPolicy.DESTROY,
    )


# Replicating a bucket to another region would copy a jurisdiction's records out of it; in-region
# durability is S3's own (and versioning, and RETAIN on delete).
NO_REPLICATION = NagPackSuppression(
    id="NIST.800.53.R5-S3BucketReplicationEnabled",
    reason="Cross-region replication would move the jurisdiction's data out of its regions (residency).",
)


class DataBucket(Construct):
    """A KMS-encrypted, TLS-only, private, versioned bucket, with server access logs."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            # S3 server access logging can only deliver to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,  # a deleted or overwritten log stays recoverable until it expires
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        skip_checkov(
            self.access_logs.node.default_child,  # type: ignore[arg-type]
            "CKV_AWS_18",
            "This is the access-log bucket; logging it to itself loops.",
        )
        NagSuppressions.add_resource_suppressions(
            self.access_logs,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1", reason="This is the access-log bucket; logging it to itself loops."
                ),
                NagPackSuppression(
                    id="NIST.800.53.R5-S3DefaultEncryptionKMS",
                    reason="S3 server access logging only delivers to buckets encrypted with SSE-S3, not SSE-KMS.",
                ),
                NO_REPLICATION,
            ],
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="data/",
            removal_policy=RemovalPolicy.RETAIN,
        )
        NagSuppressions.add_resource_suppressions(self.bucket, [NO_REPLICATION])


class QueueWithDlq(Construct):
    """An SQS queue whose poison messages move to a dead-letter queue after `max_receive_count` tries."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        visibility_timeout: Duration,
        max_receive_count: int = 3,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = sqs.Queue(
            self,
            "Dlq",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=max_receive_count),
        )
