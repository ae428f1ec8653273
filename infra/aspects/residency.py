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
from aws_cdk import Annotations, App, CfnElement, CfnOutput, CfnResource, IAspect, Stack, Tags, Token
from constructs import IConstruct

from domicile.config.topology import Topology
from domicile.residency.flows import UNKNOWN, Flow, allowed_flow, flows_of
from domicile.residency.references import References

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
        self._index: tuple[dict[str, list[Stack]], dict[str, str]] | None = None
        self._references_of: dict[str, References] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _allowed(self, stack: Stack) -> tuple[str, tuple[str, ...]] | None:
        jurisdiction = jurisdiction_of(stack)
        if jurisdiction is None or jurisdiction not in self.topology.jurisdictions:
            return None
        return jurisdiction, self.topology.regions_of(jurisdiction)

    def _index_app(self, node: IConstruct) -> tuple[dict[str, list[Stack]], dict[str, str]]:
        """Every logical id of the app with the stacks that hold it, and every export name with its region."""
        if self._index is None:
            by_id: dict[str, list[Stack]] = {}
            exports: dict[str, str] = {}
            for child in node.node.root.node.find_all():
                if isinstance(child, CfnElement):
                    stack = Stack.of(child)
                    by_id.setdefault(stack.resolve(child.logical_id), []).append(stack)
                if isinstance(child, CfnOutput) and child.export_name and not Token.is_unresolved(child.export_name):
                    exports[child.export_name] = Stack.of(child).region
            self._index = (by_id, exports)
        return self._index

    def _references(self, node: CfnResource, stack: Stack) -> References:
        if stack.node.path not in self._references_of:  # once per stack, from the app's index
            by_id, exports = self._index_app(node)
            own = frozenset(lid for lid, stacks in by_id.items() if stack in stacks)
            elsewhere = {lid: frozenset(s.region for s in stacks if s is not stack) for lid, stacks in by_id.items()
                         if any(s is not stack for s in stacks)}  # fmt: skip
            self._references_of[stack.node.path] = References(stack.region, own, elsewhere, exports)
        return self._references_of[stack.node.path]

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
        for flow in flows_of(lid, resource, stack.region, self._references(node, stack)):
            if not allowed_flow(flow, allowed):
                Annotations.of(node).add_error(describe(flow, node.node.path, jurisdiction, allowed))
