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
  domicile simulate                       the whole app locally: devices, brokers, rules, handlers, report
  domicile simulate --records 100 --drift --offline munich-line=3 --inject-violations 5
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


def _key_values(pairs: list[str], flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise DomicileError(f"{flag}: expected KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def _simulate(args: argparse.Namespace) -> int:
    from domicile.sim.main import simulate
    from domicile.sim.runner import SimOptions
    from domicile.topology import FleetMode, load_topology

    topology = load_topology(args.topology)
    offline = {}
    for fleet, seconds in _key_values(args.offline, "--offline").items():
        if fleet not in topology.fleets:
            raise DomicileError(f"--offline: unknown fleet {fleet!r}; known: {', '.join(topology.fleets)}")
        try:
            offline[fleet] = float(seconds)
        except ValueError as exc:
            raise DomicileError(f"--offline {fleet}: {seconds!r} is not a number of seconds") from exc
    brokers = _key_values(args.broker, "--broker")
    for region in brokers:
        if region not in topology.home_regions():
            raise DomicileError(f"--broker: {region} is not a home region ({', '.join(topology.home_regions())})")
    options = SimOptions(
        records=args.records, devices=args.devices, rate=args.rate, seed=args.seed,
        mode=FleetMode(args.mode) if args.mode else None, drift=args.drift, offline=offline,
        inject_violations=args.inject_violations, out=Path(args.out) if args.out else None, brokers=brokers,
        progress=not args.no_progress,
    )  # fmt: skip
    report = simulate(topology, options)
    return 0 if report["books"]["balanced"] and not report["interrupted"] else 1


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

    sim = commands.add_parser(
        "simulate",
        help="run the synthesized app locally end to end and write a report",
        description="Synthesize the CDK app, stand up moto and one MQTT broker per region, run the real "
        "handlers behind the templates' rules and event sources, and drive them with simulated devices "
        "running the real edge code on held-out digits. Exit status 1 if the books do not balance.",
    )
    sim.add_argument("--records", type=int, default=300, help="cases per device (default 300)")
    sim.add_argument("--devices", type=int, help="devices per fleet (default: the topology's counts)")
    sim.add_argument("--rate", type=float, default=60.0, help="cases per second per device (default 60)")
    sim.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data split and shuffling seed")
    sim.add_argument("--mode", choices=["edge-only", "cloud-only", "hybrid"], help="override every fleet's mode")
    sim.add_argument("--drift", action="store_true", help="shift the input distribution halfway through")
    sim.add_argument("--offline", action="append", default=[], metavar="FLEET=SECONDS",
                     help="cut a fleet's link for SECONDS a third of the way in (repeatable)")  # fmt: skip
    sim.add_argument("--inject-violations", type=int, default=0, metavar="N",
                     help="send N messages claiming another jurisdiction (all must be quarantined)")  # fmt: skip
    sim.add_argument("--broker", action="append", default=[], metavar="REGION=URL",
                     help="use this MQTT broker for a region, e.g. eu-central-1=mqtt://127.0.0.1:1883")  # fmt: skip
    sim.add_argument("--out", help="report folder (default: runs/<timestamp>)")
    sim.add_argument("--topology", help="topology file (default: domicile.toml)")
    sim.add_argument("--no-progress", action="store_true", help="no progress bars (for logs and CI)")
    sim.set_defaults(run=_simulate)

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
