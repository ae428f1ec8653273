"""cdk-nag on the whole app: the AwsSolutions and NIST 800-53 rev 5 packs; errors fail the synth.

Findings are fixed where they can be. What stays is suppressed where the resource is made, with
its reason, except the few design choices that hold for every stack, listed here.
"""

from __future__ import annotations

from aws_cdk import App, AspectPriority, Aspects, Stack
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions, NIST80053R5Checks

PACKS = ("AwsSolutions", "NIST.800.53.R5")

APP_WIDE = [
    NagPackSuppression(
        id="NIST.800.53.R5-IAMNoInlinePolicy",
        reason="CDK grants write each role's least-privilege statements (on our own resources, under the region "
        "guard's deny) as that role's own policy; a managed policy could be attached to other roles.",
    ),
    NagPackSuppression(
        id="NIST.800.53.R5-LambdaInsideVPC",
        reason="The functions call only their region's AWS endpoints (SQS, S3, DynamoDB, KMS) over TLS with IAM, "
        "pinned to the jurisdiction by the region guard; a VPC would add NAT or endpoints and guard no data path.",
    ),
    NagPackSuppression(
        id="NIST.800.53.R5-LambdaConcurrency",
        reason="Our functions reserve the concurrency the topology gives them; the two that do not are CDK's "
        "bucket-notification handler (run by CloudFormation at deploy) and the edge function (run on devices).",
    ),
    NagPackSuppression(
        id="NIST.800.53.R5-LambdaDLQ",
        reason="No failure is lost without a DLQ on the function: SQS-fed functions' queues redrive to DLQs, "
        "asynchronously invoked ones (IoT rules, S3) have an on-failure destination with the failure record, "
        "the HTTP one answers its caller, and the edge function only runs on devices.",
    ),
]


def apply_nag(app: App) -> None:
    for stack in (c for c in app.node.children if isinstance(c, Stack)):
        NagSuppressions.add_stack_suppressions(stack, APP_WIDE)
    # Read-only: runs after the mutating aspects (the region guard's deny statements).
    for pack in (AwsSolutionsChecks(verbose=True, reports=True), NIST80053R5Checks(verbose=True, reports=True)):
        Aspects.of(app).add(pack, priority=AspectPriority.READONLY)
