"""Region pinning at deploy time: every IAM role denies API calls outside its jurisdiction's regions.

The deny is on `aws:RequestedRegion`, so even a bug or a stolen credential cannot write to another
region. Global services the roles may have to reach are exempt (`GLOBAL_ACTIONS`): STS (credentials,
through its global endpoint) and IAM (no region of its own); none of them stores our data.
"""

from __future__ import annotations

import jsii
from aws_cdk import IAspect, Stack
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from domicile.config.topology import Topology
from infra.aspects.residency import jurisdiction_of

GLOBAL_ACTIONS = ("sts:*", "iam:*")


def region_deny_statement(regions: tuple[str, ...]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="DenyOutsideJurisdiction",
        effect=iam.Effect.DENY,
        not_actions=list(GLOBAL_ACTIONS),
        resources=["*"],
        conditions={"StringNotEquals": {"aws:RequestedRegion": list(regions)}},
    )


@jsii.implements(IAspect)
class RegionGuardAspect:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, iam.Role):
            return
        jurisdiction = jurisdiction_of(Stack.of(node))
        if jurisdiction is None or jurisdiction not in self.topology.jurisdictions:
            return  # the residency Aspect reports the stack
        node.add_to_principal_policy(region_deny_statement(self.topology.regions_of(jurisdiction)))
