"""The `domicile` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from domicile.models.blas import pin_kernels

pin_kernels()  # before numpy loads OpenBLAS: model builds must give the same bytes on any machine

from domicile.config.project import registry_dir  # noqa: E402
from domicile.config.topology import EdgeComponentKind, FleetMode  # noqa: E402
from domicile.errors import DomicileError  # noqa: E402
from domicile.models.datasets import DEFAULT_SEED  # noqa: E402

EXAMPLES = """examples (every command, with what it prints: docs/cli.md):
  domicile topology check      validate domicile.toml and print what each region deploys
  domicile simulate            the whole synthesized app run locally, with a report
  domicile serve               the HTTP function's handler on http://127.0.0.1:8080 (OIP v2)
  domicile <command> --help    the options of one command
"""


def _topology_check(args: argparse.Namespace) -> int:
    from domicile.config.project import topology_file
    from domicile.config.topology import load_topology
    from domicile.models.placement import check_topology
    from domicile.models.registry import load_manifest

    topo = load_topology(args.file)
    check_topology(topo, load_manifest(registry_dir(args.models)))
    print(f"{topology_file(args.file)}: valid (and the registry serves every model it names)")
    for region in topo.home_regions():
        fleets = ", ".join(f"{f.name} ({f.mode.value}, {f.devices} devices)" for f in topo.fleets_in(region))
        print(f"  {region} [{topo.jurisdiction_of_region(region)}]: {fleets}")
    return 0


def _models_build(args: argparse.Namespace) -> int:
    from domicile.config.topology import load_topology
    from domicile.models.build import build_all
    from domicile.models.lifecycle import stage_of

    manifest, built = build_all(registry_dir(args.out), args.seed, load_topology(args.topology), args.version)
    for entry in sorted(built, key=lambda e: e.name):
        name = entry.name
        print(
            f"{entry.name} {entry.version}: {entry.size_bytes} bytes, test accuracy "
            f"{entry.metrics.test_accuracy or 0:.4f}, sha256 {entry.sha256[:16]}... "
            f"({stage_of(manifest, name, entry.version)})"
        )
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from domicile.models.lifecycle import listing
    from domicile.models.registry import load_manifest

    header = ("model", "role", "version", "stage", "sha256", "bytes", "val. acc.", "test acc.", "jurisdictions")
    rows = [header, *listing(load_manifest(registry_dir(args.models)))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _split_list(value: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in value.split(",") if part.strip()) if value else None


def _models_add(args: argparse.Namespace) -> int:
    from domicile.config.topology import load_topology
    from domicile.models.add import AddRequest, add_model

    known = tuple(load_topology(args.topology).jurisdictions)
    jurisdictions = _split_list(args.jurisdictions) or known
    unknown = [j for j in jurisdictions if j not in known]
    if unknown:
        raise DomicileError(
            f"--jurisdictions: unknown jurisdiction {unknown[0]!r}; the topology has {', '.join(known)}"
        )
    request = AddRequest(
        file=Path(args.file), name=args.name, version=args.version, role=args.role, validation=Path(args.validation),
        jurisdictions=jurisdictions, labels=_split_list(args.labels), confident_accuracy=args.confident_accuracy,
        description=args.description,
    )  # fmt: skip
    model_dir = registry_dir(args.models)
    entry = add_model(model_dir, request)
    from domicile.models.lifecycle import stage_of
    from domicile.models.registry import load_manifest

    stage = stage_of(load_manifest(model_dir), entry.name, entry.version)
    output = f"label {entry.label_output!r} + {entry.probabilities_output!r}" if entry.label_output else \
        f"scores {entry.probabilities_output!r} ({entry.scores})"  # fmt: skip
    print(f"{entry.name} {entry.version} ({entry.role}): input {entry.input.name!r} {list(entry.input.shape)} "
          f"{entry.input.dtype}, {output}, {len(entry.class_labels)} classes")  # fmt: skip
    threshold = f", escalation threshold {entry.escalation.threshold}" if entry.escalation else ""
    print(f"validation accuracy {entry.metrics.validation_accuracy:.4f} on "
          f"{entry.validation_data.cases if entry.validation_data else 0} cases{threshold}; "
          f"sha256 {entry.sha256[:16]}... ({stage})")  # fmt: skip
    return 0


def _models_promote(args: argparse.Namespace) -> int:
    from domicile.config.topology import load_topology
    from domicile.models.lifecycle import Stage, promote

    manifest = promote(
        registry_dir(args.models), args.name, args.version, Stage(args.stage), load_topology(args.topology)
    )
    stages = manifest.stages[args.name]
    where = "the canary (the next `cdk deploy` rolls it out; devices in stages)" if stages.canary else "live"
    print(f"{args.name} {args.version} is now {where}; live {stages.live}"
          + (f", canary {stages.canary}" if stages.canary else ""))  # fmt: skip
    return 0


def _models_rollback(args: argparse.Namespace) -> int:
    from domicile.models.lifecycle import rollback

    _, said = rollback(registry_dir(args.models), args.name)
    print(said + " (after the next `cdk deploy`)")
    return 0


def _residency_report(args: argparse.Namespace) -> int:
    import json

    from domicile.config.topology import load_topology
    from domicile.residency.report import render_table, report

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


FAULTS = {  # --fault NAME[=N] -> the Faults field it sets, and its value without =N
    "write-error": ("write_error_every", 7),
    "aggregate-crash": ("aggregate_crashes", 1),
    "duplicate": ("duplicate_every", 5),
    "reorder": ("reorder", True),
    "device-kill": ("power_cuts", 1),
    "cpu-starve": ("cpu_starve", True),
}


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if number < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1, got {text}")
    return number


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from exc
    if not seconds >= 1:  # SQS takes whole seconds, and a visibility timeout of 0 redelivers at once
        raise argparse.ArgumentTypeError(f"needs at least 1 second, got {text}")
    return seconds


def _faults(specs: list[str]) -> Any:
    from domicile_local.sim.faults import Faults

    values: dict[str, Any] = {}
    for spec in specs:
        name, _, number = spec.partition("=")
        if name not in FAULTS:
            raise DomicileError(f"--fault: unknown fault {name!r}; known: {', '.join(FAULTS)}")
        field, default = FAULTS[name]
        if isinstance(default, bool):
            values[field] = True
            continue
        try:
            values[field] = int(number) if number else default
        except ValueError as exc:
            raise DomicileError(f"--fault {name}: {number!r} is not a whole number") from exc
        if values[field] < 1:
            raise DomicileError(f"--fault {name}: needs a number of at least 1, got {values[field]}")
    return Faults(**values)


def _simulate(args: argparse.Namespace) -> int:
    from domicile.config.topology import load_topology, with_fleet_overrides
    from domicile_local.sim.main import simulate
    from domicile_local.sim.runner import SimOptions

    topology = load_topology(args.topology)
    if args.cdk_out and (args.mode or args.component):
        raise DomicileError("--cdk-out: an assembly is already synthesized; --mode and --component need a synth")
    if args.mode or args.component:  # every fleet, in the templates too: the local run synthesizes this topology
        topology = with_fleet_overrides(
            topology,
            mode=FleetMode(args.mode) if args.mode else None,
            component=EdgeComponentKind(args.component) if args.component else None,
        )
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
        drift=args.drift, offline=offline,
        inject_violations=args.inject_violations, out=Path(args.out) if args.out else None, brokers=brokers,
        progress=not args.no_progress, faults=_faults(args.fault),
        cdk_out=Path(args.cdk_out) if args.cdk_out else None,
        data={fleet: Path(path) for fleet, path in _key_values(args.data, "--data").items()},
        visibility_timeout_s=args.visibility_timeout, environments=args.environments,
    )  # fmt: skip
    report = simulate(topology, options)
    errors = [error for fleet in report.fleets for error in fleet.device_errors]
    for error in errors:  # a device its core stopped (a refused publish) fails the run, with the core's reason
        print(f"device error: {error}", file=sys.stderr)
    return 0 if report.books.balanced and not report.interrupted and not errors else 1


def _split_build(args: argparse.Namespace) -> int:
    from domicile.split.build import build

    entry = build(registry_dir(args.out), args.seed)
    cuts = entry.split.cuts if entry.split else ()
    print(f"{entry.name} {entry.version}: {entry.size_bytes} bytes, test accuracy "
          f"{entry.metrics.test_accuracy or 0:.4f}, cuts {', '.join(cuts)}")  # fmt: skip
    return 0


def _split_partition(args: argparse.Namespace) -> int:
    from domicile.config.topology import load_topology
    from domicile.split.partition import partition

    cut, model = args.cut, args.model
    if cut is None or model is None:  # what the topology deploys
        placement = load_topology(args.topology).split_model()
        if placement is None or placement.cut is None:
            raise DomicileError("--cut and --model: not given, and the topology has no split model with a cut")
        cut, model = cut or placement.cut, model or placement.name
    entry = partition(cut, registry_dir(args.models), model, args.version)
    for key, part in (entry.split.parts if entry.split else {}).items():
        if key.startswith(f"{cut}/"):
            print(f"{key}: {part.file}, {part.size_bytes} bytes, sha256 {part.sha256[:16]}...")
    cases = "its validation data" if entry.validation_data else "the test split"
    print(f"head then tail equals the whole model on {cases} (to 1e-5) at cut {cut}")
    return 0


def _split_plan(args: argparse.Namespace) -> int:
    import json

    from domicile.split.codec import ENCODINGS
    from domicile.split.planner import NETWORKS, Network, best_per_cut, choose, options, render
    from domicile.split.profile import measure

    network = NETWORKS[args.network]
    if args.bandwidth_mbps or args.rtt_ms is not None or args.overhead_ms is not None:
        network = Network(
            "custom", args.bandwidth_mbps or network.bandwidth_mbps,
            network.rtt_ms if args.rtt_ms is None else args.rtt_ms,
            network.overhead_ms if args.overhead_ms is None else args.overhead_ms,
        )  # fmt: skip
        if network.bandwidth_mbps <= 0 or network.rtt_ms < 0 or network.overhead_ms < 0:
            raise DomicileError("network: bandwidth must be positive, RTT and overhead not negative")
    encodings = (args.encoding,) if args.encoding else ENCODINGS
    profile = measure(registry_dir(args.models), name=args.model)
    candidates = options(profile, network, args.device_factor, args.cloud_factor, encodings, args.max_accuracy_loss)
    chosen = choose(candidates)
    if args.json:
        print(json.dumps({"network": network.__dict__, "options": [o.to_dict() for o in candidates],
                          "choice": chosen.to_dict()}, indent=2))  # fmt: skip
    else:
        print(render(best_per_cut(candidates), chosen, network, args.device_factor, args.cloud_factor))
    return 0


def _books(args: argparse.Namespace) -> int:
    import boto3

    from domicile_local.books import deployed_books

    books = deployed_books(Path(args.cdk_out), boto3.session.Session(profile_name=args.profile), args.endpoint)
    for line in books.lines():
        print(line)
    return 0 if books.balanced else 1


def _demo(args: argparse.Namespace) -> int:
    from domicile_local.demo import run_demo

    run_demo(Path(args.events), Path(args.cdk_out))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from domicile.config.topology import load_topology
    from domicile_local.serve import serve

    serve(load_topology(args.topology), args.host, args.port, args.workers, Path(args.models) if args.models else None)
    return 0


def _add_topology(commands: Any) -> None:
    topology = commands.add_parser("topology", help="the topology file").add_subparsers(dest="action", required=True)
    check = topology.add_parser("check", help="validate the topology file")
    check.add_argument("--file", help="topology file (default: domicile.toml)")
    check.add_argument("--models", help="registry folder (default: ./models, or the embedded registry)")
    check.set_defaults(run=_topology_check)


def _add_models(commands: Any) -> None:
    models = commands.add_parser("models", help="model builds").add_subparsers(dest="action", required=True)
    build = models.add_parser("build", help="build the ONNX models and the manifest reproducibly")
    build.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"split and training seed (default {DEFAULT_SEED})"
    )
    build.add_argument("--out", help="output folder (default: the registry, ./models or the embedded one)")
    build.add_argument("--topology", help="topology file (default: domicile.toml)")
    build.add_argument("--version", help="build as this version (default: the recipe's); versions are immutable")
    build.set_defaults(run=_models_build)
    listed = models.add_parser("list", help="every version in the registry and its stage")
    listed.add_argument("--models", help="registry folder (default: ./models, or the embedded registry)")
    listed.set_defaults(run=_models_list)
    prom = models.add_parser("promote", help="make a version the canary or live, after checking it")
    prom.add_argument("name")
    prom.add_argument("version")
    prom.add_argument("--stage", choices=("canary", "all"), default="canary", help="canary (default) or all")
    prom.add_argument("--models", help="registry folder (default: ./models, or the embedded registry)")
    prom.add_argument("--topology", help="topology file (default: domicile.toml)")
    prom.set_defaults(run=_models_promote)
    back = models.add_parser("rollback", help="withdraw the canary, or return to the previous live version")
    back.add_argument("name")
    back.add_argument("--models", help="registry folder (default: ./models, or the embedded registry)")
    back.set_defaults(run=_models_rollback)
    _add_models_add(models)


def _add_models_add(models: Any) -> None:
    add = models.add_parser("add", help="register your own ONNX classifier, checked on its validation data")
    add.add_argument("file", metavar="FILE.onnx", help="the model (one input with a dynamic batch axis)")
    add.add_argument("--name", required=True, help="the registry name (lower-case letters, digits, '-')")
    add.add_argument("--version", required=True, help="the version, like 1.0.0 (immutable once registered)")
    add.add_argument("--role", required=True, choices=("edge", "cloud", "split"),
                     help="edge (on devices), cloud, or split (cut in two by `split partition`)")  # fmt: skip
    add.add_argument("--validation", required=True, metavar="DATA.npz", help="arrays x (cases) and y (labels)")
    add.add_argument("--labels", help="class labels in score order, comma-separated (default 0..C-1)")
    add.add_argument("--jurisdictions", help="where it may run, comma-separated (default: every one)")
    add.add_argument("--confident-accuracy", type=float, default=0.998,
                     help="edge: accuracy an answer kept on the device must reach (default 0.998)")  # fmt: skip
    add.add_argument("--description", default="", help="free text for the registry")
    add.add_argument("--models", help="registry folder (default: ./models, or the embedded registry)")
    add.add_argument("--topology", help="topology file (default: domicile.toml)")
    add.set_defaults(run=_models_add)


def _add_residency(commands: Any) -> None:
    residency = commands.add_parser("residency", help="data residency").add_subparsers(dest="action", required=True)
    flows = residency.add_parser("report", help="list every data flow of the synthesized templates")
    flows.add_argument("--cdk-out", default="cdk.out", help="the cloud assembly folder (default: cdk.out)")
    flows.add_argument("--topology", help="topology file (default: domicile.toml)")
    flows.add_argument("--json", action="store_true", help="print JSON instead of a table")
    flows.set_defaults(run=_residency_report)


def _add_simulate(commands: Any) -> None:
    sim = commands.add_parser(
        "simulate",
        help="run the synthesized app locally end to end and write a report",
        description="Synthesize the CDK app, stand up moto and one MQTT broker per region, run the real "
        "handlers behind the templates' rules and event sources, and drive them with simulated devices "
        "running the real edge code on each fleet's data (--data, the model's validation data, or held-out "
        "digits). Exit status 1 if the books do not balance.",
    )
    sim.add_argument("--records", type=int, default=300, help="cases per device (default 300)")
    sim.add_argument("--data", action="append", default=[], metavar="FLEET=DATA.npz",
                     help="the cases (x) and labels (y) a fleet's devices send (default: its model's validation "
                     "data, else held-out digits); repeatable")  # fmt: skip
    sim.add_argument("--devices", type=int, help="devices per fleet (default: the topology's counts)")
    sim.add_argument("--rate", type=float, default=60.0, help="cases per second per device (default 60)")
    sim.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data split and shuffling seed")
    sim.add_argument("--mode", choices=[m.value for m in FleetMode], help="override every fleet's mode")
    sim.add_argument("--component", choices=[k.value for k in EdgeComponentKind],
                     help="override every fleet's edge component: lambda (greengrasssdk) or generic (IPC)")  # fmt: skip
    sim.add_argument("--drift", action="store_true", help="shift the input distribution halfway through")
    sim.add_argument("--offline", action="append", default=[], metavar="FLEET=SECONDS",
                     help="cut a fleet's link for SECONDS a third of the way in (repeatable)")  # fmt: skip
    sim.add_argument("--inject-violations", type=int, default=0, metavar="N",
                     help="send N messages claiming another jurisdiction (all must be quarantined)")  # fmt: skip
    sim.add_argument("--broker", action="append", default=[], metavar="REGION=URL",
                     help="use this MQTT broker for a region, e.g. eu-central-1=mqtt://127.0.0.1:1883")  # fmt: skip
    sim.add_argument(
        "--fault", action="append", default=[], metavar="NAME[=N]",
        help="inject a fault (repeatable): write-error[=N] (the first DynamoDB write of one envelope in N fails "
             "in the aggregate function; 7), aggregate-crash[=N] (each region's aggregate function dies after "
             "counting a batch, before it answers, N times; 1), duplicate[=N] (every Nth message delivered twice; "
             "5), reorder (batches shuffled, some held back a round), device-kill[=N] (each fleet's first device "
             "loses power mid-spool-write N times and restarts from its disk; 1), cpu-starve (two busy processes "
             "compete for the CPU for the whole run, 15 minutes at most)",
    )  # fmt: skip
    sim.add_argument("--out", help="report folder (default: runs/<timestamp>)")
    sim.add_argument("--topology", help="topology file (default: domicile.toml)")
    sim.add_argument("--cdk-out", help="run this synthesized app instead of synthesizing the project's (cdk.json)")
    sim.add_argument("--no-progress", action="store_true", help="no progress bars (for logs and CI)")
    sim.add_argument(
        "--environments", type=_at_least_one, default=1, metavar="N",
        help="execution environments per function, started as concurrent invocations need them, up to the "
             "template's reserved concurrency (default 1: on a small machine more only queue for the CPU)",
    )  # fmt: skip
    sim.add_argument(
        "--visibility-timeout", type=_positive_seconds, metavar="SECONDS",
        help="shorten every queue's visibility timeout to this, and each function's timeout to a sixth of it, so "
             "failed records come back sooner (default: the templates' values, as in AWS)",
    )  # fmt: skip
    sim.set_defaults(run=_simulate)


def _add_split(commands: Any) -> None:
    from domicile.split.model import CUTS, NAME

    split = commands.add_parser("split", help="split execution of the deep model").add_subparsers(
        dest="action", required=True
    )
    sbuild = split.add_parser("build", help="train and export the splittable model reproducibly")
    sbuild.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed (default {DEFAULT_SEED})")
    sbuild.add_argument("--out", help="registry folder (default: ./models, or the embedded registry)")
    sbuild.set_defaults(run=_split_build)
    spart = split.add_parser("partition", help="cut the model into head and tail at a named tensor")
    spart.add_argument("--cut", help=f"the tensor to cut at (default: the topology's; {NAME}'s: {', '.join(CUTS)})")
    spart.add_argument("--topology", help="topology file (default: domicile.toml)")
    spart.add_argument("--models", help="registry folder (default: ./models, or the embedded registry)")
    spart.add_argument("--model", help="the split model to cut (default: the topology's split model)")
    spart.add_argument("--version", help="the version to cut (default: the deployed one)")
    spart.set_defaults(run=_split_partition)
    splan = split.add_parser("plan", help="every cut's latency for a network and device, and the best one")
    splan.add_argument("--network", choices=["3g", "wifi", "lan"], default="3g", help="a network profile")
    splan.add_argument("--bandwidth-mbps", type=float, help="override the profile's bandwidth")
    splan.add_argument("--rtt-ms", type=float, help="override the profile's round-trip time")
    splan.add_argument("--overhead-ms", type=float, help="override the per-message overhead")
    splan.add_argument("--device-factor", type=float, default=10.0,
                       help="the device is this many times slower than this machine (default 10)")  # fmt: skip
    splan.add_argument("--cloud-factor", type=float, default=1.0, help="the same for the cloud (default 1)")
    splan.add_argument("--encoding", choices=["float32", "float16", "int8"], help="only this activation encoding")
    splan.add_argument("--max-accuracy-loss", type=float, default=0.5,
                       help="accuracy points an encoding may lose on the test split (default 0.5)")  # fmt: skip
    splan.add_argument("--models", help="registry folder (default: ./models, or the embedded registry)")
    splan.add_argument("--model", default=NAME, help=f"the split model to plan for (default {NAME})")
    splan.add_argument("--json", action="store_true", help="every option as JSON")
    splan.set_defaults(run=_split_plan)


def _add_demo(commands: Any) -> None:
    books = commands.add_parser(
        "books", help="the per-case books of a deployed app: aggregated, quarantined, in a DLQ, counted twice"
    )
    books.add_argument("--cdk-out", default="cdk.out", help="the synthesized app that was deployed (default cdk.out)")
    books.add_argument("--endpoint", help="an AWS endpoint to read instead of AWS's (moto, LocalStack)")
    books.add_argument("--profile", help="the AWS profile to read with (default: the usual credential chain)")
    books.set_defaults(run=_books)
    demo = commands.add_parser("demo", help="run the inference handlers on the sample events, offline")
    demo.add_argument("--events", default="events", help="the sample events folder (default: events)")
    demo.add_argument("--cdk-out", default="cdk.out", help="the synthesized app whose handlers run (default: cdk.out)")
    demo.set_defaults(run=_demo)
    serve = commands.add_parser(
        "serve", help="the deployed HTTP function's handler behind a local HTTP server (OIP v2, no AWS)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="the port (default 8080; 0 picks a free one)")
    serve.add_argument("--topology", help="topology file: the home region and cloud model (default: domicile.toml)")
    serve.add_argument("--models", help="registry folder (default: ./models, or the embedded registry)")
    serve.add_argument(
        "--workers",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="processes, each with its own ORT sessions, as Lambda instances",
    )
    serve.set_defaults(run=_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="domicile",
        description="Serverless ML inference that keeps every record in its jurisdiction.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_topology, _add_models, _add_residency, _add_simulate, _add_split, _add_demo):
        add(commands)
    return parser


BUILD_COMMANDS = (("models", "build"), ("split", "build"))  # they export ONNX: the hash seed decides the bytes


def _with_build_hash_seed(args: argparse.Namespace, argv: list[str] | None) -> None:
    """A build restarts the command under PYTHONHASHSEED=0 (domicile/models/blas.py says why).

    Called in-process (`argv` given), it refuses instead: replacing the caller's process is not its call.
    """
    from domicile.models.blas import BUILD_HASH_SEED, hash_seed_pinned

    if (args.command, getattr(args, "action", None)) not in BUILD_COMMANDS or hash_seed_pinned(os.environ):
        return
    if argv is not None:
        raise DomicileError(
            f"PYTHONHASHSEED: a build's ONNX bytes follow the hash seed; run it with PYTHONHASHSEED={BUILD_HASH_SEED} "
            "(the domicile command does)"
        )
    sys.stdout.flush()
    env = {**os.environ, "PYTHONHASHSEED": BUILD_HASH_SEED}
    os.execve(sys.executable, [sys.executable, "-m", "domicile_local.cli", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _with_build_hash_seed(args, argv)
        return int(args.run(args))
    except DomicileError as err:
        print(f"domicile: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
