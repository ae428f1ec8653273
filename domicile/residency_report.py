"""`domicile residency report`: every data flow in the synthesized templates, allowed or not.

Reads a cloud assembly (`cdk.out`): each stack's region from its environment, its jurisdiction
from its `domicile:jurisdiction` tag, and each resource's flows (as the synth-time Aspect sees
them), plus cross-stack imports resolved to the exporting stack's region.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domicile.errors import ConfigError
from domicile.flows import GLOBAL, UNKNOWN, flows_of
from domicile.topology import Topology


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


def _stacks(cdk_out: Path) -> list[dict[str, Any]]:
    manifest_path = cdk_out / "manifest.json"
    if not manifest_path.exists():
        raise ConfigError(f"{cdk_out}: no cloud assembly (manifest.json); run `make synth` first")
    manifest = json.loads(manifest_path.read_text())
    stacks = []
    for name, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        region = artifact["environment"].rsplit("/", 1)[-1]
        props = artifact.get("properties", {})
        template = json.loads((cdk_out / props["templateFile"]).read_text())
        stacks.append({"name": name, "region": region, "tags": props.get("tags", {}), "template": template})
    return stacks


def report(cdk_out: Path, topology: Topology) -> list[FlowRow]:
    stacks = _stacks(cdk_out)
    exports: dict[str, str] = {}
    for stack in stacks:
        for output in stack["template"].get("Outputs", {}).values():
            name = output.get("Export", {}).get("Name")
            if isinstance(name, str):
                exports[name] = stack["region"]
    rows: list[FlowRow] = []
    for stack in stacks:
        region = stack["region"]
        jurisdiction = stack["tags"].get("domicile:jurisdiction") or "(none)"
        allowed = topology.regions_of(jurisdiction) if jurisdiction in topology.jurisdictions else ()
        rows.append(FlowRow(stack["name"], "(stack)", "placement", stack["name"], region, jurisdiction,
                            region in allowed))  # fmt: skip
        resources = stack["template"].get("Resources", {})
        names = set(resources) | set(stack["template"].get("Parameters", {}))

        def ref_region(value: dict[str, Any], names: set[str] = names, region: str = region) -> str:
            ((fn, arg),) = value.items()
            if fn == "Fn::ImportValue":
                return exports.get(arg, UNKNOWN) if isinstance(arg, str) else UNKNOWN
            target = arg if fn == "Ref" else (arg[0] if isinstance(arg, list) else str(arg).split(".")[0])
            return region if str(target).startswith("AWS::") or target in names else UNKNOWN

        for lid, resource in resources.items():
            for flow in flows_of(lid, resource, region, ref_region):
                ok = flow.region == GLOBAL or flow.region in allowed
                rows.append(FlowRow(stack["name"], flow.source, flow.kind, flow.target, flow.region, jurisdiction, ok))
    return rows


def render_table(rows: list[FlowRow]) -> str:
    headers = ("stack", "source", "flow", "destination", "region", "jurisdiction", "allowed")
    data = [
        (r.stack, r.source[:48], r.kind, r.target if len(r.target) <= 60 else r.target[:57] + "...", r.region,
         r.jurisdiction, "yes" if r.allowed else "NO")
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
