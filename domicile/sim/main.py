"""`domicile simulate`: the whole flow, with progress bars and a partial report on Ctrl-C."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domicile.sim.report import build_report, print_summary, write_report
from domicile.sim.runner import SimOptions, Simulation, synthesize
from domicile.topology import Topology

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def simulate(topology: Topology, options: SimOptions) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    out = options.out or PROJECT_ROOT / "runs" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    with console.status("synthesizing the CDK app"):
        cdk_out = synthesize(topology, out)
    sim = Simulation(topology, options, cdk_out, out)
    interrupted = False
    drained = False
    started = time.monotonic()
    try:
        with console.status("starting moto, the brokers and the Lambda workers"):
            sim.setup()
        started = time.monotonic()
        columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=not options.progress) as progress:
            tasks = {}
            for fleet in topology.fleets.values():
                total = (options.devices or fleet.devices) * options.records
                tasks[fleet.name] = progress.add_task(fleet.name, total=total)

            def advance() -> None:
                return None

            sim.start_devices(advance)
            sim.inject_violations()
            while not all(run.done for run in sim.devices):
                for name, task in tasks.items():
                    done = sum(len(r.started) for r in sim.devices if r.fleet.name == name)
                    progress.update(task, completed=done)
                time.sleep(0.2)
            for name, task in tasks.items():
                progress.update(task, completed=sum(len(r.started) for r in sim.devices if r.fleet.name == name))
        with console.status("draining the pipeline"):
            drained = sim.drain()
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: stopping the devices and writing a partial report[/yellow]")
        sim.stop_event.set()
        drained = sim.drain() if sim.workers else False
    seconds = time.monotonic() - started
    try:
        report = build_report(sim, seconds, drained, interrupted)
        paths = write_report(report, out, sim)
        print_summary(report, paths)
    finally:
        sim.stop()
    return report
