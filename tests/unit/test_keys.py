"""The aggregates table's key format, stated once (domicile.wire.keys) and read the same by every reader."""

import tomllib
from datetime import UTC, datetime

import pytest

from domicile.cloud.aggregation import delta_of
from domicile.config.project import topology_file
from domicile.config.topology import parse_topology
from domicile.errors import ConfigError
from domicile.wire.envelope import parse_envelope
from domicile.wire.keys import RowKind, count_pk, drift_pk, hour_key, marker_pk, model_key, row_kind
from tests.conftest import load_event


def test_each_row_kind_is_told_apart_by_its_partition_key():
    model = model_key("digits-edge", "1.0.0")
    assert model == "digits-edge@1.0.0"
    assert row_kind(count_pk("line-1", "dev-1", model)) is RowKind.COUNT
    assert row_kind(drift_pk("line-1", model)) is RowKind.DRIFT
    assert row_kind(marker_pk("0f2b")) is RowKind.MARKER


@pytest.mark.parametrize("name", ["drift", "msg"])
def test_a_fleet_may_not_take_a_name_whose_count_rows_would_read_as_another_kind(name):
    doc = tomllib.loads(topology_file().read_text())
    doc["fleets"][name] = doc["fleets"].pop(next(iter(doc["fleets"])))
    with pytest.raises(ConfigError, match=rf"^fleets.{name}: the name '{name}' is reserved"):
        parse_topology(doc)


def test_hour_key_is_the_utc_hour():
    assert hour_key(datetime(2026, 11, 24, 10, 59, 59, tzinfo=UTC)) == "2026-11-24T10"


def test_a_delta_is_keyed_as_the_readers_expect():
    body = load_event("sqs-results.json")["Records"][0]["body"]
    envelope = parse_envelope(body)
    delta = delta_of(envelope)  # type: ignore[arg-type]
    model = model_key(envelope.model.name, envelope.model.version)
    assert delta.pk == count_pk(envelope.fleet, envelope.device, model)
    assert delta.hour == hour_key(envelope.produced_at)
    assert row_kind(delta.pk) is RowKind.COUNT and row_kind(delta.drift_pk) is RowKind.DRIFT
