"""Where a `Ref`, `Fn::GetAtt` or `Fn::ImportValue` points: the one resolver of the Aspect and the report.

The synth-time Aspect builds it from the construct tree, `domicile residency report` from the
synthesized templates; both then ask it the same question and get the same answer:
- a pseudo parameter (`AWS::...`) or a resource or parameter of the stack itself: the stack's region;
- a resource of another stack of the app: that stack's region (if every stack holding that
  logical id is in one region);
- an import of an export of the app: the exporting stack's region; CDK's cross-region references
  (`crossRegionReferences`) count as exports too: the writer in the producing stack names each one,
  and the consuming stack reads it as a `Fn::GetAtt` of its `Custom::CrossRegionExportReader`
  (aws-cdk-lib README, "Accessing resources in a different stack and region"; checked against the
  templates CDK 2 synthesizes in tests/infra/residency_fixtures.py);
- anything else: UNKNOWN, which no jurisdiction allows (a region that cannot be proven is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domicile.residency.flows import UNKNOWN

CROSS_REGION_WRITER = "Custom::CrossRegionExportWriter"
CROSS_REGION_READER = "Custom::CrossRegionExportReader"
GET_ATT_ARGS = 2  # Fn::GetAtt: [logical id, attribute]


@dataclass(frozen=True)
class References:
    region: str  # the stack's own region
    own: frozenset[str]  # the stack's logical ids: resources and parameters
    elsewhere: Mapping[str, frozenset[str]] = field(default_factory=dict)  # other stacks' logical id -> regions
    exports: Mapping[str, str] = field(default_factory=dict)  # export name -> the exporting stack's region
    readers: frozenset[str] = frozenset()  # the stack's cross-region export readers

    def __call__(self, value: dict[str, Any]) -> str:
        ((fn, arg),) = value.items()
        if fn == "Fn::ImportValue":
            return self.exports.get(arg, UNKNOWN) if isinstance(arg, str) else UNKNOWN
        if fn == "Fn::GetAtt" and isinstance(arg, list) and len(arg) == GET_ATT_ARGS and arg[0] in self.readers:
            return self.exports.get(str(arg[1]), UNKNOWN)  # the attribute names the export
        target = arg if fn == "Ref" else (arg[0] if isinstance(arg, list) else str(arg).split(".")[0])
        if not isinstance(target, str):
            return UNKNOWN
        if target.startswith("AWS::") or target in self.own:
            return self.region
        regions = self.elsewhere.get(target, frozenset())
        return next(iter(regions)) if len(regions) == 1 else UNKNOWN


def template_references(
    region: str, template: Mapping[str, Any], exports: Mapping[str, str], elsewhere: Mapping[str, frozenset[str]]
) -> References:
    """The resolver for one synthesized template, given the app's exports and other stacks' logical ids."""
    resources = template.get("Resources", {})
    own = frozenset(resources) | frozenset(template.get("Parameters", {}))
    readers = frozenset(lid for lid, r in resources.items() if r.get("Type") == CROSS_REGION_READER)
    return References(region, own, elsewhere, exports, readers)


def app_exports(templates: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, str]:
    """Every export name of the app (stack name -> (region, template)) and the region of its stack."""
    exports: dict[str, str] = {}
    for region, template in templates.values():
        for output in template.get("Outputs", {}).values():
            name = output.get("Export", {}).get("Name")
            if isinstance(name, str):
                exports[name] = region
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") == CROSS_REGION_WRITER:
                exports.update(dict.fromkeys(resource["Properties"]["WriterProps"].get("exports", {}), region))
    return exports


def logical_ids_elsewhere(
    templates: Mapping[str, tuple[str, Mapping[str, Any]]], stack: str
) -> dict[str, frozenset[str]]:
    """Logical ids of every stack but `stack`, and the regions of the stacks that hold each."""
    regions: dict[str, set[str]] = {}
    for name, (region, template) in templates.items():
        if name == stack:
            continue
        for lid in (*template.get("Resources", {}), *template.get("Parameters", {})):
            regions.setdefault(lid, set()).add(region)
    return {lid: frozenset(found) for lid, found in regions.items()}
