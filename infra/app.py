"""The CDK app: one inference stack per region that the topology deploys to."""

from __future__ import annotations

import json
import os

from aws_cdk import App

from domicile.topology import Topology, load_topology
from infra.aspects.nag import apply_nag
from infra.bundling import PROJECT_ROOT
from infra.stacks.inference_stack import RegionalInferenceStack


def inference_stack_name(region: str) -> str:
    return f"domicile-inference-{region}"


def build_app(topology: Topology | None = None, outdir: str | None = None) -> App:
    topology = topology or load_topology(os.environ.get("DOMICILE_TOPOLOGY"))
    # The CDK CLI passes its own outdir; a plain `python -m infra.app` writes to cdk.out too.
    # Feature flags live in cdk.json; read them here too so `python -m infra.app` and tests match the CLI.
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text()).get("context", {})
    app = App(outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out", context=context)
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    for region in topology.home_regions():
        RegionalInferenceStack(app, inference_stack_name(region), topology=topology, region=region, account=account)
    apply_nag(app)
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
