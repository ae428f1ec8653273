"""`domicile simulate`: the whole flow, with progress bars and a partial report on Ctrl-C."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domicile.config.topology import Topology
from domicile_local.sim.report import Report, build_report, print_summary, write_report
from domicile_local.sim.runner import DrainState, SimOptions, Simulation
from domicile_local.sim.synth import synthesize

QUIET_PRINT_S = 10.0  # without progress bars, a drain line this often: never a silent terminal


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

            drained = sim.run(show, _drain_line(progress, console, options.progress))
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


def _drain_line(progress: Any, console: Any, bars: bool) -> Any:
    """While the pipeline drains: aggregated / published / in flight, as a bar or as a line every 10 s."""
    task: list[Any] = []  # the drain's bar, added when the drain starts
    printed = [0.0]

    def show(state: DrainState) -> None:
        text = f"draining: aggregated {state.aggregated} / published {state.published}, in flight {state.in_flight}"
        if bars:
            if not task:
                task.append(progress.add_task("draining", total=state.published))
            # the bar is aggregated of published (M/N); the description says what is still in flight
            progress.update(task[0], completed=state.aggregated, total=state.published,
                            description=f"drain, {state.in_flight} in flight")  # fmt: skip
            return
        if time.monotonic() - printed[0] >= QUIET_PRINT_S:
            printed[0] = time.monotonic()
            console.print(text)

    return show
