"""Region pinning at synth time: an Aspect that fails the synth when data could leave its jurisdiction.

Every stack is pinned to a jurisdiction (`pin_jurisdiction`). The Aspect then reports, as an
Annotations error naming the construct path, the region and the jurisdiction:
- a stack whose region is not one of its jurisdiction's regions (or that has no region);
- an edge fleet whose home region is outside its jurisdiction or is not the stack's region;
- any data flow of any resource (IoT rule actions, event sources, Lambda destinations and
  dead-letter queues, environment references, S3 replication and notifications, DynamoDB replicas
  and streams, backup copies, log subscriptions and destinations, Greengrass artifacts, cross-stack
  references, explicit ARNs and endpoints) into another region, or whose region cannot be proven.
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import Annotations, App, CfnElement, CfnResource, IAspect, Stack, Tags, Token
from constructs import IConstruct

from domicile.flows import GLOBAL, UNKNOWN, Flow, flows_of
from domicile.topology import Topology

JURISDICTION_CONTEXT = "domicile:jurisdiction"


def pin_jurisdiction(stack: Stack, jurisdiction: str) -> None:
    """Declare whose data a stack holds; call right after the stack is created.

    The context is what the Aspect reads; the tag travels into the cloud assembly for the report.
    """
    stack.node.set_context(JURISDICTION_CONTEXT, jurisdiction)
    Tags.of(stack).add(JURISDICTION_CONTEXT, jurisdiction)


def jurisdiction_of(stack: Stack) -> str | None:
    value = stack.node.try_get_context(JURISDICTION_CONTEXT)
    return str(value) if value else None


def describe(flow: Flow, path: str, jurisdiction: str, allowed: tuple[str, ...]) -> str:
    where = "a region that cannot be proven from the template" if flow.region == UNKNOWN else flow.region
    return (
        f"[residency] {path}: {flow.kind} -> {flow.target} is in {where}, outside jurisdiction "
        f"'{jurisdiction}' (allowed: {', '.join(allowed)})"
    )


@jsii.implements(IAspect)
class ResidencyAspect:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._index: dict[str, list[Stack]] | None = None

    # -- helpers ---------------------------------------------------------------------------------
    def _allowed(self, stack: Stack) -> tuple[str, tuple[str, ...]] | None:
        jurisdiction = jurisdiction_of(stack)
        if jurisdiction is None or jurisdiction not in self.topology.jurisdictions:
            return None
        return jurisdiction, self.topology.regions_of(jurisdiction)

    def _stacks_by_logical_id(self, node: IConstruct) -> dict[str, list[Stack]]:
        if self._index is None:
            index: dict[str, list[Stack]] = {}
            for child in node.node.root.node.find_all():
                if isinstance(child, CfnElement):
                    stack = Stack.of(child)
                    index.setdefault(stack.resolve(child.logical_id), []).append(stack)
            self._index = index
        return self._index

    def _ref_region(self, node: CfnResource, stack: Stack) -> Any:
        def ref_region(value: dict[str, Any]) -> str:
            ((fn, arg),) = value.items()
            target = arg if fn == "Ref" else (arg[0] if isinstance(arg, list) else str(arg).split(".")[0])
            if fn == "Fn::ImportValue" or not isinstance(target, str):
                return UNKNOWN
            if target.startswith("AWS::"):
                return stack.region
            owners = self._stacks_by_logical_id(node).get(target, [])
            if stack in owners or not owners:
                return stack.region  # our own resource (or a parameter of ours)
            regions = {s.region for s in owners}
            return regions.pop() if len(regions) == 1 else UNKNOWN

        return ref_region

    # -- the visit -------------------------------------------------------------------------------
    def visit(self, node: IConstruct) -> None:
        from infra.constructs.edge_fleet import EdgeFleets  # late: the constructs import this module's peers

        if isinstance(node, Stack) and not isinstance(node, App):
            self._check_stack(node)
        elif isinstance(node, EdgeFleets):
            self._check_fleets(node)
        elif isinstance(node, CfnResource):
            self._check_resource(node)

    def _check_stack(self, stack: Stack) -> None:
        jurisdiction = jurisdiction_of(stack)
        if jurisdiction is None:
            Annotations.of(stack).add_error(
                f"[residency] {stack.node.path}: stack has no jurisdiction; call pin_jurisdiction(stack, ...)"
            )
            return
        if jurisdiction not in self.topology.jurisdictions:
            Annotations.of(stack).add_error(f"[residency] {stack.node.path}: unknown jurisdiction '{jurisdiction}'")
            return
        allowed = self.topology.regions_of(jurisdiction)
        if Token.is_unresolved(stack.region):
            Annotations.of(stack).add_error(
                f"[residency] {stack.node.path}: stack has no region (env-agnostic); jurisdiction '{jurisdiction}' "
                f"needs one of {', '.join(allowed)}"
            )
        elif stack.region not in allowed:
            Annotations.of(stack).add_error(
                f"[residency] {stack.node.path}: stack region {stack.region} is outside jurisdiction "
                f"'{jurisdiction}' (allowed: {', '.join(allowed)})"
            )

    def _check_fleets(self, fleets: Any) -> None:
        stack = Stack.of(fleets)
        for fleet in fleets.fleets:
            allowed = (
                self.topology.regions_of(fleet.jurisdiction)
                if fleet.jurisdiction in self.topology.jurisdictions
                else ()
            )
            if fleet.home_region not in allowed or fleet.home_region != stack.region:
                Annotations.of(fleets).add_error(
                    f"[residency] {fleets.node.path}: fleet {fleet.name} has home region {fleet.home_region}, "
                    f"outside jurisdiction '{fleet.jurisdiction}' (allowed: {', '.join(allowed) or 'none'}) "
                    f"or not this stack's region {stack.region}"
                )

    def _check_resource(self, node: CfnResource) -> None:
        stack = Stack.of(node)
        pinned = self._allowed(stack)
        if pinned is None or Token.is_unresolved(stack.region):
            return  # the stack check reports it
        jurisdiction, allowed = pinned
        try:
            # What the template will hold for this resource (tokens resolved in this stack).
            props = stack.resolve(node._render_properties(stack.resolve(node._cfn_properties)))
        except Exception as exc:  # a resource CDK cannot render yet: say so rather than pass silently
            Annotations.of(node).add_warning(f"[residency] {node.node.path}: could not be inspected ({exc})")
            return
        resource = {"Type": node.cfn_resource_type, "Properties": props}
        lid = stack.resolve(node.logical_id)
        for flow in flows_of(lid, resource, stack.region, self._ref_region(node, stack)):
            if flow.region != GLOBAL and flow.region not in allowed:
                Annotations.of(node).add_error(describe(flow, node.node.path, jurisdiction, allowed))
