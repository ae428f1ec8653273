"""The simulation's report is typed data: JSON, Markdown, the table and the plots come from it alone."""

import json

from domicile.cloud.books import Books
from domicile_local.sim.report import Report, markdown, write_report
from domicile_local.sim.report.model import FaultCounts, FleetDrift, FleetReport, HandlerStage, Stages
from domicile_local.sim.report.render import books_line, drift_line, faults_line, rows


def _fleet(name, region, aggregated, **kw):
    base = dict(
        fleet=name, region=region, jurisdiction="eu", mode="hybrid", devices=2, cases=100, inferences=100,
        edge_answered=80, escalated=20, split=0, aggregated=aggregated, accuracy=0.985, bytes_sent=3000,
        bytes_raw_offload=30000, bytes_vs_raw=0.1, latency_ms={50: 40.0, 95: 90.0, 99: 120.0}, spooled=3,
        replayed=3, evicted=0, quarantined=0, dlq=0, duplicates_suppressed=1, device_errors=[],
    )  # fmt: skip
    return FleetReport(**{**base, **kw})


def _report(**books):
    fleets = [_fleet("munich-line", "eu-central-1", 100), _fleet("virginia-plant", "us-east-1", 99)]
    ledger = dict(
        published=200, aggregated=199, quarantined=0, in_dlq=1, dlq_messages=1, dead_lettered_after_counted=[],
        still_on_devices=0, difference=0,
        counted_in_tables=199, counted_twice=0, balanced=True, unaccounted_cases=[], injected_violations=0,
        injected_quarantined=0,
    )  # fmt: skip
    return Report(
        seconds=10.0, throughput_per_s=19.9, drained=True, interrupted=False, options={"records": 50, "drift": True},
        fleets=fleets, books=Books(**{**ledger, **books}), metrics={"EnvelopesAggregated": 12},
        duplicates_suppressed=2,
        faults=FaultCounts(injected={"duplicate_every": 5}, write_errors=0, crashes=0, duplicates_delivered=4,
                           held_back=0, device_kills=0, torn_spool_writes=0, cases_resumed=0),
        stages=Stages(rules={}, handlers={"s/Agg": HandlerStage(invocations=3, errors=0, mean_ms=12.5)}),
        escalation_timeline={"munich-line": [(0.0, 0.2), (1.0, 0.25)]},
        drift={"munich-line": FleetDrift(threshold=0.2, max_psi=0.31, alarm=True, first_alarm_s=4.0,
                                         models=["digits-edge@1.0.0"], timeline=[(0.0, 0.05), (4.0, 0.31)])},
        greengrass={"munich-line-0": {"com.domicile.edge.munich-line": "1.0.0"}},
        latencies_ms={"eu-central-1": [10.0, 20.0, 30.0], "us-east-1": [15.0]},
    )  # fmt: skip


def test_report_json_round_trips_to_the_same_report(tmp_path):
    report = _report()
    paths = write_report(report, tmp_path)
    assert {p.name for p in paths} == {"report.json", "report.md", "accuracy_vs_bytes.png", "latency_cdf.png",
                                       "escalation_rate.png", "drift_psi.png"}  # fmt: skip
    assert all(p.stat().st_size > 0 for p in paths)
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert loaded["books"]["balanced"] is True and loaded["fleets"][0]["latency_ms"]["99"] == 120.0
    assert Report.model_validate(loaded) == report


def test_every_rendering_reads_the_typed_fields():
    report = _report()
    assert rows(report)[0] == ("eu-central-1", "munich-line", "hybrid", "100", "80/20/0", "98.50%", "0.10x",
                               "40/90/120", "3/3", "0/0/1")  # fmt: skip
    assert books_line(report) == "Books balance: published 200 = aggregated 199 + quarantined 0 + in DLQ 1."
    assert drift_line(report) == ("Input drift, highest PSI per fleet: munich-line 0.31 ALARM (over 0.2 at 4 s).")
    assert "4 duplicate deliveries" in str(faults_line(report))
    text = markdown(report, ["latency_cdf.png"])
    assert "| eu-central-1 | munich-line | hybrid |" in text and "![latency_cdf](latency_cdf.png)" in text


def test_books_that_do_not_balance_say_what_is_missing():
    report = _report(balanced=False, difference=1, unaccounted_cases=["munich-line-0/c7"])
    assert books_line(report).startswith("Books do NOT balance: published 200")
    assert "never accounted for: munich-line-0/c7" in books_line(report)
