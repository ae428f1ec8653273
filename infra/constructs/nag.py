"""cdk-nag suppressions shared by our constructs, each with its reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import IConstruct

BASIC_EXECUTION = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def suppress_lambda_defaults(fn: IConstruct, extra_wildcards: Sequence[Any] = ()) -> None:
    """The findings every CDK Python function with tracing and KMS grants carries."""
    NagSuppressions.add_resource_suppressions(
        fn,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM4",
                reason="AWSLambdaBasicExecutionRole only lets the function write its own logs.",
                applies_to=[BASIC_EXECUTION],
            ),
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="X-Ray PutTraceSegments/PutTelemetryRecords take no resource ARN; KMS and S3 wildcards "
                "are the action groups CDK grants on our own key and our own prefixes.",
                applies_to=[
                    "Resource::*",
                    "Action::kms:GenerateDataKey*",
                    "Action::kms:ReEncrypt*",
                    "Action::s3:GetObject*",
                    "Action::s3:GetBucket*",
                    "Action::s3:List*",
                    "Action::s3:Abort*",
                    *extra_wildcards,
                ],
            ),
        ],
        apply_to_children=True,
    )
