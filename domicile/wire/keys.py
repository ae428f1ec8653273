"""The keys of an aggregates table: the one place that says what each DynamoDB row is.

Three kinds of row share the table (partition key `pk`, sort key `sk`):
- a count row, `fleet#device#name@version` by UTC hour: what the cases of that hour add up to;
- a drift row, `drift#fleet#name@version` by hour: the fleet's input histogram for that model;
- a marker, `msg#<message id>` / `counted`: the envelope was counted (exactly-once).
Only count rows hold cases; books and reports skip the other two.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

# The tables' key attributes: (partition, sort). The stack declares them, the store and Powertools use them.
AGGREGATES_KEY: tuple[str, str | None] = ("pk", "sk")
AGGREGATES_TTL = "expires_at"  # markers expire; count rows keep none

MARKER_PREFIX = "msg#"
DRIFT_PREFIX = "drift#"
MARKER_SORT_KEY = "counted"
HOUR_FORMAT = "%Y-%m-%dT%H"
# A fleet with one of these names would have count rows that read as markers or drift rows.
RESERVED_FLEET_NAMES = frozenset({MARKER_PREFIX.rstrip("#"), DRIFT_PREFIX.rstrip("#")})


class RowKind(StrEnum):
    COUNT = "count"
    DRIFT = "drift"
    MARKER = "marker"


def model_key(name: str, version: str) -> str:
    """A model version as the aggregates, metrics and drift baselines name it: `name@version`."""
    return f"{name}@{version}"


def hour_key(at: datetime) -> str:
    """The UTC hour bucket of a time, the sort key of count and drift rows (e.g. 2026-11-24T10)."""
    return at.strftime(HOUR_FORMAT)


def count_pk(fleet: str, device: str, model: str) -> str:
    return f"{fleet}#{device}#{model}"


def drift_pk(fleet: str, model: str) -> str:
    """Drift is per fleet and model (all its devices together), by hour."""
    return f"{DRIFT_PREFIX}{fleet}#{model}"


def marker_pk(message_id: str) -> str:
    return f"{MARKER_PREFIX}{message_id}"


def row_kind(pk: str) -> RowKind:
    if pk.startswith(MARKER_PREFIX):
        return RowKind.MARKER
    if pk.startswith(DRIFT_PREFIX):
        return RowKind.DRIFT
    return RowKind.COUNT
