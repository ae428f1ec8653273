"""The CDK app: one stack per home region of the topology (inference, edge fleets, routing, aggregation)."""

from __future__ import annotations

import json
import os
import sys

from aws_cdk import App, AspectPriority, Aspects, cx_api

from domicile.config.topology import Topology, load_topology
from domicile.models.placement import check_topology
from domicile.models.registry import load_manifest
from infra.aspects.checkov import CheckovSuppressions
from infra.aspects.nag import apply_nag
from infra.aspects.region_guard import RegionGuardAspect
from infra.aspects.residency import ResidencyAspect
from infra.bundling import PROJECT_ROOT
from infra.stacks.regional_stack import RegionalStack


def regional_stack_name(region: str) -> str:
    return f"domicile-{region}"


def build_app(topology: Topology | None = None, outdir: str | None = None) -> App:
    topology = topology or load_topology(os.environ.get("DOMICILE_TOPOLOGY"))
    # The CDK CLI passes its own outdir; a plain `python -m infra.app` writes to cdk.out too.
    # Feature flags live in cdk.json; read them here too so `python -m infra.app` and tests match the CLI.
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text()).get("context", {})
    # As the CDK CLI does: asset paths in the template's metadata (SAM and `domicile simulate` read them).
    context.setdefault("aws:cdk:enable-asset-metadata", True)
    app = App(outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out", context=context)
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    manifest = load_manifest()
    check_topology(topology, manifest)  # every fleet's models registered, allowed there, and a matching pair
    for region in topology.home_regions():
        RegionalStack(
            app, regional_stack_name(region), topology=topology, manifest=manifest, region=region, account=account
        )
    apply_residency(app, topology)
    apply_nag(app)
    return app


def apply_residency(app: App, topology: Topology) -> None:
    """Deploy-time guard (mutating: adds deny statements) then the synth-time check (read-only)."""
    Aspects.of(app).add(RegionGuardAspect(topology), priority=AspectPriority.MUTATING)
    Aspects.of(app).add(ResidencyAspect(topology), priority=AspectPriority.READONLY)
    Aspects.of(app).add(CheckovSuppressions(), priority=AspectPriority.MUTATING)


def synth_errors(assembly: cx_api.CloudAssembly) -> list[str]:
    """Error annotations (residency, cdk-nag) of every stack, as `path: message`."""
    errors = []
    for stack in assembly.stacks:
        for message in stack.messages:
            if message.level == cx_api.SynthesisMessageLevel.ERROR:
                errors.append(f"{message.id}: {message.entry.data}")
    return errors


def main() -> None:
    errors = synth_errors(build_app().synth())
    for error in errors:
        print(f"[Error at {error}", file=sys.stderr)
    if errors:
        sys.exit(f"synth failed: {len(errors)} error(s)")


if __name__ == "__main__":
    main()
