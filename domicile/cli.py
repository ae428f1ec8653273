"""The `domicile` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from domicile.datasets import DEFAULT_SEED
from domicile.errors import DomicileError
from domicile.manifest import DEFAULT_MODEL_DIR

EXAMPLES = """examples:
  domicile topology check                 validate domicile.toml and print what it deploys
  domicile models build --seed 7          rebuild the ONNX models and models/manifest.json
  domicile demo                           run the inference handlers on events/ (offline, moto)
  domicile residency report               every data flow of cdk.out, allowed or not (exit 1 if not)
  domicile residency report --json        the same as JSON, for a pipeline gate
"""


def _topology_check(args: argparse.Namespace) -> int:
    from domicile.topology import load_topology

    topo = load_topology(args.file)
    print(f"{args.file or 'domicile.toml'}: valid")
    for region in topo.home_regions():
        fleets = ", ".join(f"{f.name} ({f.mode.value}, {f.devices} devices)" for f in topo.fleets_in(region))
        print(f"  {region} [{topo.jurisdiction_of_region(region)}]: {fleets}")
    return 0


def _models_build(args: argparse.Namespace) -> int:
    from domicile.modelbuild import build_all
    from domicile.topology import load_topology

    manifest = build_all(Path(args.out), args.seed, load_topology(args.topology))
    for entry in manifest.models.values():
        print(
            f"{entry.name} {entry.version}: {entry.size_bytes} bytes, test accuracy "
            f"{entry.metrics.test_accuracy:.4f}, sha256 {entry.sha256[:16]}..."
        )
    return 0


def _residency_report(args: argparse.Namespace) -> int:
    import json

    from domicile.residency_report import render_table, report
    from domicile.topology import load_topology

    rows = report(Path(args.cdk_out), load_topology(args.topology))
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(render_table(rows))
    return 1 if any(not r.allowed for r in rows) else 0


def _demo(args: argparse.Namespace) -> int:
    from domicile.demo import run_demo

    run_demo()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="domicile",
        description="Serverless ML inference that keeps every record in its jurisdiction.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    topology = commands.add_parser("topology", help="the topology file").add_subparsers(dest="action", required=True)
    check = topology.add_parser("check", help="validate the topology file")
    check.add_argument("--file", help="topology file (default: domicile.toml)")
    check.set_defaults(run=_topology_check)

    models = commands.add_parser("models", help="model builds").add_subparsers(dest="action", required=True)
    build = models.add_parser("build", help="build the ONNX models and the manifest reproducibly")
    build.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"split and training seed (default {DEFAULT_SEED})"
    )
    build.add_argument("--out", default=str(DEFAULT_MODEL_DIR), help="output folder (default: models/)")
    build.add_argument("--topology", help="topology file (default: domicile.toml)")
    build.set_defaults(run=_models_build)

    residency = commands.add_parser("residency", help="data residency").add_subparsers(dest="action", required=True)
    flows = residency.add_parser("report", help="list every data flow of the synthesized templates")
    flows.add_argument("--cdk-out", default="cdk.out", help="the cloud assembly folder (default: cdk.out)")
    flows.add_argument("--topology", help="topology file (default: domicile.toml)")
    flows.add_argument("--json", action="store_true", help="print JSON instead of a table")
    flows.set_defaults(run=_residency_report)

    demo = commands.add_parser("demo", help="run the inference handlers on the sample events, offline")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except DomicileError as err:
        print(f"domicile: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
