"""checkov's suppressions: each a `checkov: skip` entry in the resource's metadata, with its reason.

checkov reads CloudFormation suppressions from a resource's `Metadata.checkov.skip` list of
`{id, comment}` (checkov's "Suppressing and skipping policies" page). `make synth` runs checkov on the
synthesized templates and fails on any failed check that is not skipped this way. Findings are fixed
where they can be (reserved concurrency, the Lambda environment under the region's key); what stays is
a design choice: the two that hold for every function are added here, the rest where the resource is made.
"""

from __future__ import annotations

import jsii
from aws_cdk import CfnResource, IAspect
from constructs import IConstruct

FUNCTION_WIDE = [
    ("CKV_AWS_117", "The functions call only their region's AWS endpoints over TLS with IAM, pinned to the "
                    "jurisdiction by the region guard; a VPC would add NAT or endpoints and guard no data path."),
    ("CKV_AWS_116", "No failure is lost without a function DLQ: SQS-fed functions' queues redrive to DLQs, "
                    "asynchronously invoked ones have an on-failure destination, the HTTP one answers its caller."),
]  # fmt: skip


def skip_checkov(resource: CfnResource, check: str, reason: str) -> None:
    """Add one skip to the resource's checkov metadata, keeping those already there."""
    metadata = resource.get_metadata("checkov") or {}
    skips = [s for s in metadata.get("skip", []) if s["id"] != check]
    resource.add_metadata("checkov", {**metadata, "skip": [*skips, {"id": check, "comment": reason}]})


@jsii.implements(IAspect)
class CheckovSuppressions:
    """The checks every Lambda function of the app skips, for the reasons above."""

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, CfnResource) and node.cfn_resource_type == "AWS::Lambda::Function":
            for check, reason in FUNCTION_WIDE:
                skip_checkov(node, check, reason)
            if node.node.path.rsplit("/", 2)[-2].startswith("BucketNotificationsHandler"):
                skip_checkov(node, "CKV_AWS_115", "CDK's own handler that writes the bucket's notification "
                             "configuration at deploy time; CloudFormation alone invokes it.")  # fmt: skip
