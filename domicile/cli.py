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
