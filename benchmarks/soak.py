"""A bounded soak of the local pipeline, loopback only: `make soak` (outside CI; about 3 minutes).

1. Calibrate: the max rate is the highest rate the pipeline keeps up with (its backlog stays flat
   over a 20 s stream), found by bisection below a rate it cannot take. Offered far beyond it, the
   local pipeline does not deliver its max rate but collapses (threads and processes fight for 2 cores).
2. Soak: every device streams its share of that rate for SOAK_S seconds. Once a second a sampler
   records the resident memory of every process of the pipeline (this one with the devices and the
   rules runner, the Lambda workers, the brokers, the moto servers) and the backlog (cases started,
   not yet aggregated).
3. Compare the first window with the last one: memory, and the end-to-end latency (device to
   aggregate written) of the cases started in each, against the bounds stated below. Then drain:
   the books must balance.

moto keeps every record and archive object in its memory, as DynamoDB and S3
keep them on disk, so its growth is stored data: it is bounded per case aggregated. Everything
else must stay flat.

    make soak          (writes benchmarks/soak.json and prints the table the README quotes)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from domicile.config.topology import load_topology

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOAK_S = 60.0
WINDOW_S = 10.0  # the first and the last window compared
UPPER_RATE = 200.0  # cases/s in all: more than this pipeline can take (a Lambda worker per function)
PROBES = 5  # bisection steps: the max rate to within UPPER_RATE / 32
PROBE_S = 20.0
KEEPS_UP_SLOPE = 0.01  # keeping up: the backlog grows by under 1% of the offered rate
# Stated bounds (the README quotes them).
PROCESS_GROWTH_BOUND = 0.10  # everything but moto: at most 10% more resident memory at the end
STORED_BYTES_PER_CASE_BOUND = 32 * 1024  # moto: what it holds per case aggregated
LATENCY_GROWTH_BOUND = 2.0  # last window's p99 at most twice the first window's


@dataclass
class Sample:
    at: float
    rss: dict[str, int]  # role -> bytes
    backlog: int


@dataclass
class Sampler:
    sim: Any
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def roles(self) -> dict[int, str]:
        """Process id -> what it is, for this process and every process the simulation started."""
        roles = {}
        for region, service in self.sim.services.aws.items():
            if service.process is not None:
                roles[service.process.pid] = f"moto:{region}"
        for region, service in self.sim.services.brokers.items():
            if service.process is not None:
                roles[service.process.pid] = f"broker:{region}"
        for worker in self.sim.workers.values():
            if worker.pid is not None:
                roles[worker.pid] = f"worker:{worker.function.key}"
        return roles

    def take(self) -> Sample:
        import psutil

        rss = {"runner (devices, rules, pollers)": psutil.Process().memory_info().rss}
        for pid, role in self.roles().items():
            try:
                rss[role] = psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                rss[role] = 0
        started = sum(len(run.started) for run in self.sim.devices)
        return Sample(time.time(), rss, started - len(self.sim.ledger.completions))

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.samples.append(self.take())


def _simulation(rate: float, seconds: float, cdk_out: Path, out: Path) -> Any:
    """The default topology set up on fresh services, every device to stream its share of `rate`."""
    from domicile_local.sim.runner import SimOptions, Simulation

    topology = load_topology()
    per_device = rate / sum(f.devices for f in topology.fleets.values())
    options = SimOptions(records=max(1, round(per_device * seconds)), rate=per_device, progress=False, out=out)
    sim = Simulation(topology, options, cdk_out, out)
    sim.setup()
    return sim


def _stream(sim: Any, sampler: Sampler) -> tuple[float, float]:
    """Start the devices with the sampler; return when they are done: (started, seconds streamed)."""
    thread = threading.Thread(target=sampler.run, daemon=True)
    started = time.time()
    thread.start()
    sim.start_devices()
    while not all(run.done for run in sim.devices):
        time.sleep(0.2)
    return started, time.time() - started


def _latencies(sim: Any) -> list[tuple[float, float]]:
    """(started, ms from started to aggregate written) per case aggregated."""
    out = []
    for run in sim.devices:
        for case_id, started in run.started.items():
            done = sim.ledger.completions.get((run.identity.device, case_id))
            if done is not None:
                out.append((started, (done.at - started) * 1000))
    return out


def _probe(rate: float, cdk_out: Path, out: Path) -> dict[str, Any]:
    """Does the pipeline keep up with `rate`? Its backlog over the second half of a short stream must stay flat."""
    sim = _simulation(rate, PROBE_S, cdk_out, out)
    sampler = Sampler(sim)
    try:
        started, streamed_s = _stream(sim, sampler)
        sampler.stop.set()
        late = _window(sampler.samples, started + streamed_s / 2, started + streamed_s + 1)
        slope = float(np.polyfit([x.at for x in late], [x.backlog for x in late], 1)[0]) if len(late) > 2 else 0.0
    finally:
        sim.stop()
    return {"rate": rate, "backlog_growth_per_s": slope, "keeps_up": slope <= KEEPS_UP_SLOPE * rate}


def calibrate(cdk_out: Path, out: Path, upper: float) -> dict[str, Any]:
    """The max rate: the highest the pipeline keeps up with, by bisection below `upper` (no pipeline here
    reaches it)."""
    low, high = 0.0, upper
    probes = []
    for step in range(PROBES):
        rate = (low + high) / 2
        probe = _probe(rate, cdk_out, out / f"probe-{step}")
        probes.append(probe)
        low, high = (rate, high) if probe["keeps_up"] else (low, rate)
    return {"upper_per_s": upper, "probes": probes, "max_rate_per_s": low or probes[-1]["rate"] / 2}


def soak(max_rate: float, cdk_out: Path, out: Path, seconds: float) -> dict[str, Any]:
    from domicile_local.sim.report import build_report

    sim = _simulation(max_rate, seconds, cdk_out, out)
    sampler = Sampler(sim)
    try:
        baseline = sampler.take()  # set up, nothing streamed yet
        started, streamed_s = _stream(sim, sampler)
        drained = sim.drain()
        sampler.stop.set()
        report = build_report(sim, time.time() - started, drained, interrupted=False).to_json()
        latencies = _latencies(sim)
    finally:
        sim.stop()
    window = SoakWindow(started, streamed_s, max_rate, sim.options.rate)
    return _verdicts(sampler.samples, baseline, latencies, report, window)


def _window(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.at < end]


def _memory(samples: list[Sample], baseline: Sample, started: float, streamed_s: float) -> dict[str, Any]:
    """Mean resident memory in the first and the last window of the stream, per kind of process."""
    first = _window(samples, started, started + WINDOW_S)
    last = _window(samples, started + streamed_s - WINDOW_S, started + streamed_s)

    def mean_mb(window: list[Sample], moto: bool) -> float:
        totals = [sum(v for k, v in s.rss.items() if k.startswith("moto:") == moto) for s in window]
        return float(np.mean(totals)) / 2**20

    def per_role(window: list[Sample]) -> dict[str, float]:
        return {role: float(np.mean([s.rss.get(role, 0) for s in window])) / 2**20 for role in baseline.rss}

    return {
        "processes": {"baseline_mb": sum(v for k, v in baseline.rss.items() if not k.startswith("moto:")) / 2**20,
                      "first_mb": mean_mb(first, False), "last_mb": mean_mb(last, False)},
        "moto": {"baseline_mb": sum(v for k, v in baseline.rss.items() if k.startswith("moto:")) / 2**20,
                 "first_mb": mean_mb(first, True), "last_mb": mean_mb(last, True)},
        "by_role_first_mb": per_role(first),
        "by_role_last_mb": per_role(last),
        "backlog_first": float(np.mean([s.backlog for s in first])),
        "backlog_last": float(np.mean([s.backlog for s in last])),
        "backlog_peak": max(s.backlog for s in samples),
    }  # fmt: skip


def _latency(latencies: list[tuple[float, float]], start: float, end: float) -> dict[str, float]:
    window = [ms for at, ms in latencies if start <= at < end]
    return {"cases": len(window), **{f"p{q}": float(np.percentile(window, q)) for q in (50, 99)}}


@dataclass(frozen=True)
class SoakWindow:
    """When the streaming ran, and at what offered rate (in total and per device)."""

    started: float
    streamed_s: float
    max_rate: float
    per_device: float


def _verdicts(
    samples: list[Sample],
    baseline: Sample,
    latencies: list[tuple[float, float]],
    report: dict[str, Any],
    window: SoakWindow,
) -> dict[str, Any]:
    started, streamed_s, max_rate, per_device = window.started, window.streamed_s, window.max_rate, window.per_device
    memory = _memory(samples, baseline, started, streamed_s)
    first = _latency(latencies, started, started + WINDOW_S)
    last = _latency(latencies, started + streamed_s - WINDOW_S, started + streamed_s)
    books = report["books"]
    cases = books["aggregated"]
    processes, moto = memory["processes"], memory["moto"]
    process_growth = processes["last_mb"] / processes["first_mb"] - 1
    stored_per_case = (moto["last_mb"] - moto["baseline_mb"]) * 2**20 / max(cases, 1)
    latency_ratio = last["p99"] / first["p99"]
    return {
        "offered_per_s": max_rate,
        "per_device_per_s": per_device,
        "streamed_s": streamed_s,
        "cases": cases,
        "balanced": books["balanced"],
        "counted_twice": books.get("counted_twice", 0),
        "delivered_per_s": cases / streamed_s,
        "memory": memory,
        "latency_first": first,
        "latency_last": last,
        "process_growth": process_growth,
        "stored_bytes_per_case": stored_per_case,
        "latency_ratio": latency_ratio,
        "held": {
            "processes": process_growth <= PROCESS_GROWTH_BOUND,
            "moto": stored_per_case <= STORED_BYTES_PER_CASE_BOUND,
            "latency": latency_ratio <= LATENCY_GROWTH_BOUND,
            "books": bool(books["balanced"]),
        },
    }


def report_lines(calibration: dict[str, Any], result: dict[str, Any]) -> list[str]:
    mem, held = result["memory"], result["held"]
    first, last = result["latency_first"], result["latency_last"]

    def verdict(ok: bool) -> str:
        return "held" if ok else "NOT held"

    return [
        f"Max rate: {calibration['max_rate_per_s']:.1f} cases/s, the highest rate kept up with; probes (cases/s, "
        "backlog growth per s): "
        + ", ".join(f"{p['rate']:.0f} ({p['backlog_growth_per_s']:+.1f})" for p in calibration["probes"])
        + ".",
        f"Soak: {result['streamed_s']:.0f} s offered at {result['offered_per_s']:.1f} cases/s "
        f"({result['per_device_per_s']:.2f}/s per device); {result['cases']:,} cases aggregated; "
        f"books balanced: {result['balanced']}; counted twice: {result['counted_twice']}.",
        "",
        "| measure | first 10 s | last 10 s | growth | bound | verdict |",
        "|---|---|---|---|---|---|",
        f"| resident memory, all but moto (runner, Lambda workers, brokers) | {mem['processes']['first_mb']:.0f} MB "
        f"| {mem['processes']['last_mb']:.0f} MB | {result['process_growth']:+.1%} | <= +{PROCESS_GROWTH_BOUND:.0%} "
        f"| {verdict(held['processes'])} |",
        f"| resident memory, moto (the stored data) | {mem['moto']['first_mb']:.0f} MB "
        f"| {mem['moto']['last_mb']:.0f} MB "
        f"| {result['stored_bytes_per_case'] / 1024:.1f} KiB per case | <= {STORED_BYTES_PER_CASE_BOUND // 1024} KiB "
        f"per case | {verdict(held['moto'])} |",
        f"| latency p50, device to aggregate written | {first['p50']:.0f} ms | {last['p50']:.0f} ms "
        f"| {last['p50'] / first['p50']:.2f}x | | |",
        f"| latency p99, device to aggregate written | {first['p99']:.0f} ms | {last['p99']:.0f} ms "
        f"| {result['latency_ratio']:.2f}x | <= {LATENCY_GROWTH_BOUND:.0f}x | {verdict(held['latency'])} |",
        f"| backlog (started, not yet aggregated), mean | {mem['backlog_first']:.0f} | {mem['backlog_last']:.0f} "
        f"| peak {mem['backlog_peak']} | | |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SOAK_S, help="how long the devices stream")
    parser.add_argument("--rate", type=float, help="offered cases/s in all (default: calibrate)")
    parser.add_argument("--upper", type=float, default=UPPER_RATE, help="calibration: a rate it cannot take")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "soak.json")
    args = parser.parse_args(argv)
    from domicile_local.sim.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="domicile-soak-") as tmp:
        cdk_out = synthesize(load_topology(), Path(tmp))
        calibration = (
            {"upper_per_s": args.rate, "probes": [], "max_rate_per_s": args.rate}
            if args.rate
            else calibrate(cdk_out, Path(tmp), args.upper)
        )
        result = soak(calibration["max_rate_per_s"], cdk_out, Path(tmp) / "soak", args.seconds)
    args.out.write_text(json.dumps({"calibration": calibration, "soak": result}, indent=2) + "\n")
    print("\n".join(report_lines(calibration, result)))
    return 0 if all(result["held"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
