"""`domicile simulate`: the whole flow, with progress bars and a partial report on Ctrl-C."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domicile.config.topology import Topology
from domicile_local.sim.report import Report, build_report, print_summary, write_report
from domicile_local.sim.runner import SimOptions, Simulation
from domicile_local.sim.synth import synthesize


def simulate(topology: Topology, options: SimOptions) -> Report:
    from rich.console import Console

    console = Console()
    out = options.out or Path("runs") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    cdk_out = options.cdk_out
    if cdk_out is None:
        with console.status("synthesizing the CDK app"):
            cdk_out = synthesize(topology, out)
    sim = Simulation(topology, options, cdk_out, out)
    try:
        return _run(sim, topology, options, console)
    finally:
        sim.stop()  # moto, the brokers and the workers go, whatever happened


def _run(sim: Simulation, topology: Topology, options: SimOptions, console: Any) -> Report:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    interrupted = False
    drained = False
    started = time.monotonic()
    try:
        with console.status("starting moto, the brokers and the Lambda workers"):
            sim.setup()
        started = time.monotonic()
        columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=not options.progress) as progress:
            tasks = {
                fleet.name: progress.add_task(fleet.name, total=(options.devices or fleet.devices) * options.records)
                for fleet in topology.fleets.values()
            }

            def show(counts: dict[str, int]) -> None:
                for name, done in counts.items():
                    progress.update(tasks[name], completed=done)

            drained = sim.run(show)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: stopping the devices and writing a partial report[/yellow]")
        sim.devices_stop.set()
        try:
            drained = sim.drain() if sim.workers else False
        except KeyboardInterrupt:  # a second Ctrl-C: report what is there now
            drained = False
    seconds = time.monotonic() - started
    report = build_report(sim, seconds, drained, interrupted)
    paths = write_report(report, sim.out)
    print_summary(report, paths)
    return report
