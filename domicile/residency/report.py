"""`domicile residency report`: every data flow in the synthesized templates, allowed or not.

Reads a cloud assembly (`cdk.out`): each stack's region from its environment, its jurisdiction
from its `domicile:jurisdiction` tag, and each resource's flows (as the synth-time Aspect sees
them), plus cross-stack imports resolved to the exporting stack's region.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domicile.config.assembly import read_assembly
from domicile.config.topology import Topology
from domicile.residency.flows import allowed_flow, flows_of
from domicile.residency.references import app_exports, logical_ids_elsewhere, template_references

TARGET_WIDTH = 60  # characters of a destination the table shows


@dataclass(frozen=True)
class FlowRow:
    stack: str
    source: str
    kind: str
    target: str
    region: str
    jurisdiction: str
    allowed: bool

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def report(cdk_out: Path, topology: Topology) -> list[FlowRow]:
    stacks = read_assembly(cdk_out)
    templates = {stack.name: (stack.region, stack.template) for stack in stacks}
    exports = app_exports(templates)
    rows: list[FlowRow] = []
    for stack in stacks:
        region = stack.region
        jurisdiction = stack.jurisdiction or "(none)"
        allowed = topology.regions_of(jurisdiction) if jurisdiction in topology.jurisdictions else ()
        rows.append(FlowRow(stack.name, "(stack)", "placement", stack.name, region, jurisdiction,
                            region in allowed))  # fmt: skip
        references = template_references(region, stack.template, exports, logical_ids_elsewhere(templates, stack.name))
        for lid, resource in stack.template.get("Resources", {}).items():
            for flow in flows_of(lid, resource, region, references):
                rows.append(FlowRow(stack.name, flow.source, flow.kind, flow.target, flow.region, jurisdiction,
                                    allowed_flow(flow, allowed)))  # fmt: skip
    return rows


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def render_table(rows: list[FlowRow]) -> str:
    headers = ("stack", "source", "flow", "destination", "region", "jurisdiction", "allowed")
    data = [
        (r.stack, r.source[:48], r.kind, _clip(r.target, TARGET_WIDTH), r.region, r.jurisdiction,
         "yes" if r.allowed else "NO")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in data)) if data else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in data]
    bad = sum(not r.allowed for r in rows)
    lines.append("")
    lines.append(
        f"{len(rows)} flows, {bad} leaving their jurisdiction" if bad else f"{len(rows)} flows, all in-jurisdiction"
    )
    return "\n".join(lines)
