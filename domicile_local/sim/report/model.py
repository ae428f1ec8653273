"""The simulation's report as typed data: what `domicile simulate` measured, and nothing rendered yet.

`collect` builds it from the run (stores read directly, the workers' logs, the devices' counters);
`render` turns it into report.json, report.md, the terminal table and the plots. report.json is
`Report.to_json()`: the same field names, so a pipeline can read it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from domicile.cloud.books import Books


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FleetReport(_Part):
    fleet: str
    region: str
    jurisdiction: str
    mode: str
    devices: int
    cases: int
    inferences: int  # more than the cases when a device resumed after a power cut
    edge_answered: int
    escalated: int
    split: int
    aggregated: int
    accuracy: float | None  # against the labels, of the cases aggregated
    bytes_sent: int
    bytes_raw_offload: int  # what the same cases would cost sent raw, one escalate envelope each
    bytes_vs_raw: float | None
    latency_ms: dict[int, float]  # percentile -> device to aggregate written
    spooled: int
    replayed: int
    evicted: int
    quarantined: int
    dlq: int
    duplicates_suppressed: int
    device_errors: list[str]


class FaultCounts(_Part):
    injected: dict[str, Any]  # the --fault options given
    write_errors: int
    crashes: int
    duplicates_delivered: int
    held_back: int
    device_kills: int
    torn_spool_writes: int
    cases_resumed: int
    cpu_starve_processes: int = 0  # --fault cpu-starve: busy processes still running when the run ended


class RuleStage(_Part):
    messages: int
    mean_ms: float


class HandlerStage(_Part):
    invocations: int
    errors: int
    mean_ms: float
    aws_calls: dict[str, int] = {}  # the AWS API calls its code made, by service.Operation
    environments: int = 1  # execution environments it scaled to (at most its reserved concurrency)


class Stages(_Part):
    rules: dict[str, RuleStage]  # by rule name
    handlers: dict[str, HandlerStage]  # by stack/logical id
    event_sources: dict[str, dict[str, int]] = {}  # SQS polling on a function's behalf, by the function it feeds


class FleetDrift(_Part):
    threshold: float | None  # the synthesized ModelDrift alarm's
    max_psi: float | None
    alarm: bool
    first_alarm_s: float | None
    models: list[str]
    timeline: list[tuple[float, float]]  # (seconds since the first PSI, PSI)


class Report(_Part):
    seconds: float
    throughput_per_s: float
    drained: bool
    interrupted: bool
    options: dict[str, Any]
    fleets: list[FleetReport]
    books: Books
    metrics: dict[str, int]  # EMF totals the functions emitted
    duplicates_suppressed: int
    faults: FaultCounts
    stages: Stages
    escalation_timeline: dict[str, list[tuple[float, float]]]  # fleet -> (seconds, escalated share)
    drift: dict[str, FleetDrift]
    greengrass: dict[str, dict[str, str]]  # device -> component -> version its local core deployed
    latencies_ms: dict[str, list[float]]  # region -> every aggregated case's latency, sorted (the CDF plot)
    aws_calls_per_1000_cases: float | None = None  # our functions' calls (polling apart) per 1,000 aggregated

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
