"""`domicile simulate` end to end, with small counts: the synthesized app run locally must keep its books.

One run takes the faults (a fleet's link cut, the eu broker restarted mid-run, injected residency
violations, failed DynamoDB writes, an aggregate function crashing mid-batch, duplicate and
out-of-order delivery); the default CLI run checks what a newcomer sees; a Ctrl-C run checks the partial report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from domicile.config.topology import load_topology
from domicile_local.sim.faults import Faults
from domicile_local.sim.runner import SimOptions, Simulation
from domicile_local.sim.synth import synthesize
from tests.broker import KIND, Broker
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("simulate")]
FLEETS = len(load_topology().fleets)  # the faulty run has one device per fleet
REGIONS = len(load_topology().home_regions())
# Every fault of `--fault` at once, on top of the broker restart, the cut link and the violations.
FAULTS = Faults(
    write_error_every=7, aggregate_crashes=1, duplicate_every=5, reorder=True, power_cuts=1, cpu_starve=True
)

FLEET_FIELDS = {
    "fleet", "region", "jurisdiction", "mode", "devices", "cases", "inferences", "edge_answered", "escalated", "split",
    "aggregated", "accuracy", "bytes_sent", "bytes_raw_offload", "bytes_vs_raw", "latency_ms", "spooled",
    "replayed", "evicted", "quarantined", "dlq", "duplicates_suppressed", "device_errors",
}  # fmt: skip
BOOKS_FIELDS = {
    "published", "aggregated", "quarantined", "in_dlq", "dlq_messages", "still_on_devices", "difference",
    "balanced", "unaccounted_cases", "injected_violations", "injected_quarantined",
}  # fmt: skip


def _restart_when_busy(sim: Simulation, broker: Broker, fleet: str, log: list[str]) -> None:
    """Stop the broker once the fleet has started a few cases, keep it down 1.5 s, bring it back."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sim.cases_started().get(fleet, 0) >= 8:
            broker.stop()
            log.append("stopped" if broker.saved_sessions else "stopped, its sessions lost")
            time.sleep(1.5)
            broker.start()
            log.append("started")
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory) -> tuple[dict[str, Any], list[str]]:
    from domicile_local.sim.report import build_report

    if KIND != "mosquitto":
        pytest.fail("a broker restart that keeps sessions needs mosquitto: `make test` installs it")
    topology = load_topology()
    out = tmp_path_factory.mktemp("faulty-run")
    broker = Broker(out, persistent=True)
    broker.start()
    options = SimOptions(
        records=48, devices=1, rate=16, offline={"berlin-depot": 1.0}, inject_violations=3,
        brokers={"eu-central-1": broker.url}, progress=False, out=out, faults=FAULTS,
        visibility_timeout_s=10,  # failed writes come back in seconds, not the templates' 3 minutes
    )  # fmt: skip
    sim = Simulation(topology, options, synthesize(topology, out), out)
    restarts: list[str] = []
    try:
        sim.setup()
        restarter = threading.Thread(target=_restart_when_busy, args=(sim, broker, "munich-line", restarts))
        restarter.start()
        drained = sim.run()
        restarter.join()
        report = build_report(sim, 1.0, drained, interrupted=False).to_json()
        report["secret_key"] = sim.secret_key  # for the leak check below; never part of a real report
        return report, restarts
    finally:
        sim.stop()
        broker.stop()


def test_books_balance_exactly(faulty_run):
    report, _ = faulty_run
    books = report["books"]
    assert report["drained"]
    assert books["balanced"], books
    assert books["unaccounted_cases"] == []
    assert books["published"] == FLEETS * 48 + 3
    assert books["aggregated"] == FLEETS * 48
    assert books["in_dlq"] == 0 and books["still_on_devices"] == 0
    assert all(f["aggregated"] == f["cases"] == 48 for f in report["fleets"])


def test_nothing_archived_stays_uncounted_after_the_faults(faulty_run):
    # a failed write or a crash archives a batch before its count; the redelivery counts every envelope of it
    report, _ = faulty_run
    assert report["books"]["archived_uncounted"] == []


def test_nothing_is_counted_twice_whatever_the_faults(faulty_run):
    report, _ = faulty_run
    faults, books = report["faults"], report["books"]
    assert faults["write_errors"] > 0  # records whose DynamoDB write failed were retried, then counted once
    assert faults["crashes"] == REGIONS  # each region's aggregate function died once, counted but unanswered
    assert faults["duplicates_delivered"] > 0 and faults["held_back"] > 0  # duplicate and out-of-order delivery
    assert report["duplicates_suppressed"] >= faults["duplicates_delivered"] // 2
    # DynamoDB's own counts: every case once, none twice, none lost
    assert books["counted_in_tables"] == books["aggregated"] == FLEETS * 48
    assert books["counted_twice"] == 0 and books["in_dlq"] == 0


def test_no_log_of_the_run_shows_a_secret(faulty_run, tmp_path_factory):
    """Every function's log, moto's and the brokers': the run's AWS secret key never appears."""
    report, _ = faulty_run
    secret = report["secret_key"]
    logs = list((Path(report["options"]["out"]) / "logs").glob("*"))
    assert len(logs) >= 6 and sum(p.stat().st_size for p in logs) > 10_000  # the logs are there and not empty
    for path in logs:
        assert secret not in path.read_text(errors="replace"), path
    assert secret not in json.dumps({k: v for k, v in report.items() if k != "secret_key"})


def test_a_broker_restart_mid_run_loses_nothing(faulty_run):
    report, restarts = faulty_run
    assert restarts == ["stopped", "started"]
    munich = next(f for f in report["fleets"] if f["fleet"] == "munich-line")
    assert munich["aggregated"] == munich["cases"] == 48
    assert munich["spooled"] > 0  # the link really went down under the device
    assert munich["replayed"] == munich["spooled"]


def test_an_offline_window_is_replayed(faulty_run):
    report, _ = faulty_run
    berlin = next(f for f in report["fleets"] if f["fleet"] == "berlin-depot")
    assert berlin["spooled"] > 0
    assert berlin["replayed"] == berlin["spooled"]
    assert berlin["evicted"] == 0
    assert berlin["aggregated"] == berlin["cases"]


def test_a_device_killed_mid_spool_write_resumes_from_its_disk(faulty_run):
    """Each fleet's device loses power once, half a spool file written; restarted, it resumes its input."""
    report, _ = faulty_run
    faults = report["faults"]
    assert faults["device_kills"] == faults["torn_spool_writes"] == FLEETS
    # the case the torn write carried, at least, is handled again after each restart ...
    assert faults["cases_resumed"] >= FLEETS
    for fleet in report["fleets"]:
        assert fleet["inferences"] > fleet["cases"], fleet["fleet"]
        # ... and still every case is aggregated once (DynamoDB's own counts, in the test above)
        assert fleet["aggregated"] == fleet["cases"] == 48, fleet["fleet"]


def test_injected_violations_are_quarantined_and_never_aggregated(faulty_run):
    report, _ = faulty_run
    books = report["books"]
    assert books["injected_violations"] == 3
    assert books["injected_quarantined"] == 3
    assert books["quarantined"] == 3  # and no honest case was
    assert report["metrics"]["ResidencyViolation"] == 3
    # each fleet aggregated exactly its own cases: the violation-* case ids never reached aggregation
    assert sum(f["aggregated"] for f in report["fleets"]) == books["aggregated"] == FLEETS * 48


def _function_id(out, handler: str) -> str:
    """A function's logical id in the synthesized eu template the run used, by its handler."""
    template = json.loads((out / "cdk.out" / "domicile-eu-central-1.template.json").read_text())
    return str(next(lid for lid, r in template["Resources"].items()
                    if r["Properties"].get("Handler") == handler))  # fmt: skip


def test_the_default_cli_run_prints_the_summary_and_writes_every_report_file(tmp_path):
    """What `make demo` ends with: the default options, 300 cases per device over every fleet of domicile.toml."""
    topology = load_topology(ROOT / "domicile.toml")  # the project's own file, not the suite's
    cases = 300 * sum(f.devices for f in topology.fleets.values())
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "DOMICILE_TOPOLOGY"}
    result = subprocess.run(
        [sys.executable, "-m", "domicile_local.cli", "simulate", "--no-progress", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Books balance: published {cases} = aggregated {cases} + quarantined 0 + in DLQ 0." in result.stdout
    for fleet in topology.fleets:
        assert fleet in result.stdout
    for name in (
        "report.json",
        "report.md",
        "accuracy_vs_bytes.png",
        "latency_cdf.png",
        "escalation_rate.png",
        "drift_psi.png",
    ):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert {"seconds", "throughput_per_s", "drained", "interrupted", "options", "fleets", "books", "metrics",
            "duplicates_suppressed", "stages", "escalation_timeline", "drift"} <= set(report)  # fmt: skip
    assert {f["fleet"] for f in report["fleets"]} == set(topology.fleets)
    for fleet in report["fleets"]:
        assert set(fleet) >= FLEET_FIELDS, FLEET_FIELDS - set(fleet)
        assert set(fleet["latency_ms"]) == {"50", "95", "99"}
        assert 0.8 <= fleet["accuracy"] <= 1.0
    assert set(report["books"]) >= BOOKS_FIELDS
    modes = {f["fleet"]: f for f in report["fleets"]}
    # raw offload costs what it costs; packing confident results costs far less
    assert modes["virginia-plant"]["bytes_vs_raw"] == pytest.approx(1.0, abs=0.01)
    assert modes["berlin-depot"]["bytes_vs_raw"] < 0.5
    # the split fleet: every case leaves as the head's activation and comes back finished by the tail
    split = modes["hamburg-lab"]
    assert split["mode"] == "split" and split["split"] == split["inferences"] == split["aggregated"] > 0
    assert split["edge_answered"] == split["escalated"] == 0
    assert split["accuracy"] >= 0.95  # the deep model's own accuracy (98% on the test split), not the edge's
    # domicile.toml's fleets take the queued cloud path: the batch function finishes the split cases, many a
    # run, and the split tail's own function (the direct path) is never invoked
    handlers = report["stages"]["handlers"]
    batch = handlers["domicile-eu-central-1/" + _function_id(out, "functions.inference.sqs_batch.handler")]
    assert 0 < batch["invocations"] < split["split"] + modes["munich-line"]["escalated"]
    assert "domicile-eu-central-1/" + _function_id(out, "functions.inference.split_tail.handler") not in handlers
    assert set(report["stages"]) == {"rules", "handlers", "event_sources"}
    assert report["aws_calls_per_1000_cases"] < 200  # a batch at a time: see BENCHMARKS.md for the per-mode table
    # no drift in the held-out digits: PSI measured for every fleet whose answers carry input bins, no alarm
    for name, fleet in report["drift"].items():
        assert not fleet["alarm"], (name, fleet["max_psi"])
        if name != "hamburg-lab":  # split answers come from the tail, which never sees the input
            assert fleet["threshold"] == 0.2 and fleet["max_psi"] is not None and fleet["max_psi"] < 0.2
    assert "Books balance" in (out / "report.md").read_text()


def test_a_fading_sensor_fires_the_drift_alarm_of_every_fleet_that_reports_psi(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "domicile_local.cli", "simulate", "--drift", "--records", "300", "--devices", "1",
         "--no-progress", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    drift = report["drift"]
    for name in ("munich-line", "berlin-depot", "virginia-plant"):
        assert drift[name]["alarm"] and drift[name]["max_psi"] > drift[name]["threshold"] == 0.2, name
        assert drift[name]["timeline"] and drift[name]["first_alarm_s"] is not None
    assert drift["munich-line"]["models"] == ["digits-edge@1.0.0"]  # the cloud model saw < 200 cases
    assert "ALARM" in result.stdout and "Input drift" in (out / "report.md").read_text()
    assert report["books"]["balanced"]


def test_ctrl_c_writes_a_partial_report(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "domicile_local.cli", "simulate", "--records", "400", "--devices", "1", "--rate", "10",
         "--no-progress", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def aggregated_something() -> bool:  # the aggregate function's metrics log shows cases counted
        return any("ResultsAggregated" in log.read_text() for log in out.glob("logs/*AggregationFunction*.log"))

    deadline = time.monotonic() + 240
    while not aggregated_something() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert aggregated_something(), "the run never aggregated a case"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 1, stdout[-2000:] + stderr[-2000:]
    assert "interrupted: stopping the devices and writing a partial report" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True
    assert 0 < report["books"]["published"] < FLEETS * 400
    assert report["books"]["balanced"], report["books"]  # what was published is still accounted for
    assert "(interrupted: partial report)" in (out / "report.md").read_text()


def test_generic_components_over_ipc_balance_the_books_with_every_device_deployed_by_its_core(tmp_path):
    """`--component generic`: every fleet's devices run the IPC component their local core deployed."""
    topology = load_topology()
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "domicile_local.cli", "simulate", "--component", "generic", "--records", "60",
         "--no-progress", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cases = 60 * sum(f.devices for f in topology.fleets.values())
    assert f"Books balance: published {cases} = aggregated {cases} + quarantined 0 + in DLQ 0." in result.stdout
    report = json.loads((out / "report.json").read_text())
    things = {f"{f.name}-{i}": f for f in topology.fleets.values() for i in range(f.devices)}
    assert set(report["greengrass"]) == set(things)
    template = json.loads((out / "cdk.out" / "domicile-eu-central-1.template.json").read_text())
    components = [r["Properties"] for r in template["Resources"].values()
                  if r["Type"] == "AWS::GreengrassV2::ComponentVersion"]  # fmt: skip
    assert components and all("LambdaFunction" not in c for c in components)  # no Lambda component at all
    for thing, fleet in things.items():
        deployed = report["greengrass"][thing]
        edge = f"com.domicile.edge.{fleet.name}"
        assert "aws.greengrass.LegacySubscriptionRouter" not in deployed  # IPC needs no router
        # the core placed and unpacked the component's code and the model where the nucleus would
        unpacked = out / "devices" / thing / "packages" / "artifacts-unarchived"
        assert list((unpacked / edge / deployed[edge]).glob("*/edge_components/inference/ipc_component.py"))
        assert list(unpacked.glob("com.domicile.model.*/*/*/manifest.json"))
