"""The CDK app: one stack per home region of the topology (inference, edge fleets, routing, aggregation)."""

from __future__ import annotations

import json
import os

from aws_cdk import App

from domicile.manifest import load_manifest
from domicile.topology import Topology, load_topology
from infra.aspects.nag import apply_nag
from infra.bundling import PROJECT_ROOT
from infra.stacks.regional_stack import RegionalStack


def regional_stack_name(region: str) -> str:
    return f"domicile-{region}"


def build_app(topology: Topology | None = None, outdir: str | None = None) -> App:
    topology = topology or load_topology(os.environ.get("DOMICILE_TOPOLOGY"))
    # The CDK CLI passes its own outdir; a plain `python -m infra.app` writes to cdk.out too.
    # Feature flags live in cdk.json; read them here too so `python -m infra.app` and tests match the CLI.
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text()).get("context", {})
    app = App(outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out", context=context)
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    manifest = load_manifest()
    for region in topology.home_regions():
        RegionalStack(
            app, regional_stack_name(region), topology=topology, manifest=manifest, region=region, account=account
        )
    apply_nag(app)
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
