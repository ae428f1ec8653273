"""The report rendered: report.json, report.md, the terminal table and the plots, all from a `Report`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from domicile_local.sim.report.model import Report


def write_report(report: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    paths = [out / "report.json", out / "report.md", *_plots(report, out)]
    (out / "report.md").write_text(markdown(report, [p.name for p in paths[2:]]))
    return paths


@contextmanager
def _figure(path: Path, title: str, xlabel: str, ylabel: str) -> Iterator[Any]:
    """One plot: the axes to draw on, then labels, grid and a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        yield ax
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def _plots(report: Report, out: Path) -> list[Path]:
    paths = [out / "accuracy_vs_bytes.png", out / "latency_cdf.png", out / "escalation_rate.png",
             out / "drift_psi.png"]  # fmt: skip
    with _figure(paths[0], "Accuracy vs bytes sent, per fleet and mode", "bytes sent / bytes of raw offload",
                 "accuracy against labels (%)") as ax:  # fmt: skip
        for f in report.fleets:
            if f.accuracy is not None and f.bytes_vs_raw is not None:
                ax.scatter(f.bytes_vs_raw, f.accuracy * 100, s=60)
                ax.annotate(f"{f.fleet} ({f.mode})", (f.bytes_vs_raw, f.accuracy * 100), fontsize=8,
                            xytext=(5, 5), textcoords="offset points")  # fmt: skip

    with _figure(paths[1], "End-to-end latency CDF per region",
                 "end-to-end latency, device to aggregate written (ms)", "fraction of cases") as ax:  # fmt: skip
        for region, values in report.latencies_ms.items():
            if values:
                ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=region)
        ax.set_xscale("log")

    drift = " (drift from mid-stream)" if report.options.get("drift") else ""
    with _figure(paths[2], f"Escalation rate over time{drift}", "seconds since the first case",
                 "cases escalated (%)") as ax:  # fmt: skip
        for name, points in report.escalation_timeline.items():
            if points:
                ax.plot([p[0] for p in points], [p[1] * 100 for p in points], label=name, marker=".")

    with _figure(paths[3], f"Input drift (PSI) per fleet{drift}", "seconds since the first PSI",
                 "population stability index") as ax:  # fmt: skip
        thresholds = set()
        for name, fleet in report.drift.items():
            if fleet.timeline:
                ax.plot([p[0] for p in fleet.timeline], [p[1] for p in fleet.timeline], label=name, marker=".")
            if fleet.threshold is not None:
                thresholds.add(fleet.threshold)
        for threshold in thresholds:
            ax.axhline(threshold, color="red", linestyle="--", linewidth=1)
    return paths


HEADERS = ("region", "fleet", "mode", "cases", "edge/esc/split", "accuracy", "bytes/raw", "p50/p95/p99 ms",
           "spool/replay", "quar/DLQ/dup")  # fmt: skip


def rows(report: Report) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for f in report.fleets:
        lat = f.latency_ms
        out.append(
            (
                f.region, f.fleet, f.mode, str(f.cases), f"{f.edge_answered}/{f.escalated}/{f.split}",
                "-" if f.accuracy is None else f"{f.accuracy * 100:.2f}%",
                "-" if f.bytes_vs_raw is None else f"{f.bytes_vs_raw:.2f}x",
                f"{lat[50]:.0f}/{lat[95]:.0f}/{lat[99]:.0f}", f"{f.spooled}/{f.replayed}",
                f"{f.quarantined}/{f.dlq}/{f.duplicates_suppressed}",
            )
        )  # fmt: skip
    return out


def books_line(report: Report) -> str:
    return "\n".join(report.books.lines())


def faults_line(report: Report) -> str | None:
    """What `--fault` injected, and whether the tables counted anything twice; None for a run without faults."""
    faults, b = report.faults, report.books
    if not faults.injected:
        return None
    return (
        f"Faults injected: {faults.write_errors} failed DynamoDB writes, {faults.crashes} aggregate crashes "
        f"mid-batch, {faults.duplicates_delivered} duplicate deliveries, {faults.held_back} messages held back, "
        f"{faults.device_kills} devices killed mid-spool-write ({faults.torn_spool_writes} torn writes "
        f"discarded, {faults.cases_resumed} cases resumed); "
        f"the aggregates tables count {b.counted_in_tables} cases for {b.aggregated} aggregated"
        + (" (nothing counted twice)." if b.counted_twice == 0 else f" ({b.counted_twice} counted twice!).")
    )


def drift_line(report: Report) -> str:
    parts = []
    for name, fleet in report.drift.items():
        if fleet.max_psi is None:
            parts.append(f"{name} -")
        elif fleet.alarm:
            at = fleet.first_alarm_s or 0.0
            parts.append(f"{name} {fleet.max_psi:.2f} ALARM (over {fleet.threshold} at {at:.0f} s)")
        else:
            parts.append(f"{name} {fleet.max_psi:.2f}")
    return "Input drift, highest PSI per fleet: " + ", ".join(parts) + "."


def calls_line(report: Report) -> str:
    """Our functions' AWS calls per 1,000 cases aggregated, and the busiest operations."""
    if report.aws_calls_per_1000_cases is None:
        return "AWS calls by our functions: none aggregated"
    totals: Counter[str] = Counter()
    for stage in report.stages.handlers.values():
        totals.update(stage.aws_calls)
    top = ", ".join(f"{op} {n}" for op, n in totals.most_common(4))
    return f"AWS calls by our functions: {report.aws_calls_per_1000_cases:.0f} per 1,000 cases aggregated ({top})"


def markdown(report: Report, plots: list[str]) -> str:
    lines = [
        "# domicile simulate: report",
        "",
        f"{report.seconds:.1f} s, {report.throughput_per_s:.0f} inferences/s aggregated"
        + (" (interrupted: partial report)" if report.interrupted else "")
        + ("" if report.drained else " (the pipeline had not drained when the run ended)"),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    b = report.books
    lines += [
        "",
        books_line(report),
        "",
        drift_line(report),
        "",
        f"Duplicates suppressed by the aggregate function: {report.duplicates_suppressed}. "
        f"Injected residency violations: {b.injected_violations}, quarantined: {b.injected_quarantined}.",
        "",
        calls_line(report),
        "",
    ]
    if faults_line(report):
        lines += [str(faults_line(report)), ""]
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def print_summary(report: Report, paths: list[Path]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))  # a pipe or CI log still gets whole columns
    table = Table(title="domicile simulate", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("region", "fleet", "mode") else "right")
    for row in rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(books_line(report))
    console.print(drift_line(report))
    if faults_line(report):
        console.print(faults_line(report))
    console.print(
        f"{report.throughput_per_s:.0f} inferences/s aggregated over {report.seconds:.1f} s; "
        f"duplicates suppressed: {report.duplicates_suppressed}; "
        f"injected violations quarantined: {report.books.injected_quarantined}/{report.books.injected_violations}"
    )
    console.print(calls_line(report))
    console.print("report: " + ", ".join(str(p) for p in paths))
