import json
import uuid

import pytest

from domicile.errors import InputError
from domicile.wire.envelope import EscalateEnvelope, ResultEnvelope, ResultPayload, parse_envelope, result_message_id

SHA = "a" * 64


def escalation(**overrides):
    doc = {
        "schema_version": 1,
        "message_id": str(uuid.uuid4()),
        "device": "munich-line-0",
        "fleet": "munich-line",
        "jurisdiction": "eu",
        "home_region": "eu-central-1",
        "model": {"name": "digits-edge", "version": "1.0.0", "sha256": SHA},
        "produced_at": "2026-11-24T10:00:00Z",
        "kind": "escalate",
        "payload": {"case_id": "c1", "features": [0.0] * 64, "edge": {"label": "3", "confidence": 0.4}},
    }
    doc.update(overrides)
    return doc


def test_round_trip():
    envelope = parse_envelope(json.dumps(escalation()))
    assert isinstance(envelope, EscalateEnvelope)
    assert parse_envelope(envelope.model_dump_json()) == envelope


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"schema_version": 2}, "schema_version", "Input should be 1"),
        ({"kind": "telemetry"}, "envelope", "does not match any of the expected tags"),
        ({"device": None}, "device", "Input should be a valid string"),
        ({"message_id": "not-a-uuid"}, "message_id", "valid UUID"),
        ({"produced_at": "2026-11-24T10:00:00"}, "produced_at", "timezone"),
        ({"home_region": "Europe"}, "home_region", "String should match pattern"),
        ({"model": {"name": "m", "version": "1", "sha256": "xyz"}}, "model.sha256", "String should match pattern"),
        ({"payload": {"case_id": "c1", "features": []}}, "payload.features", "at least 1 item"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ],
)
def test_bad_envelopes_name_the_field(overrides, field, reason):
    with pytest.raises(InputError) as err:
        parse_envelope(escalation(**overrides))
    assert err.value.field == field
    assert reason in err.value.reason


def test_missing_field_and_bad_json():
    doc = escalation()
    del doc["fleet"]
    with pytest.raises(InputError) as err:
        parse_envelope(doc)
    assert (err.value.field, err.value.reason) == ("fleet", "Field required")
    with pytest.raises(InputError, match="Invalid JSON"):
        parse_envelope("{not json")


def test_result_ids_are_stable_per_request():
    request = uuid.uuid4()
    assert result_message_id(request) == result_message_id(request)
    assert result_message_id(request) != result_message_id(uuid.uuid4())


def test_result_envelope_packs_many_results():
    payload = {
        "source": "edge",
        "case_ids": [f"c{i}" for i in range(50)],
        "labels": ["1"] * 50,
        "confidence": [0.9] * 50,
    }
    envelope = parse_envelope(escalation(kind="result", payload=payload))
    assert isinstance(envelope, ResultEnvelope)
    rows = envelope.payload.results
    assert len(rows) == 50 and rows[7].case_id == "c7" and rows[7].source == "edge"
    assert ResultPayload.from_results(rows) == envelope.payload


def test_result_columns_must_line_up():
    payload = {"source": "edge", "case_ids": ["a", "b"], "labels": ["1"], "confidence": [0.9, 0.8]}
    with pytest.raises(InputError) as err:
        parse_envelope(escalation(kind="result", payload=payload))
    assert err.value.field == "payload" and "labels has 1 entries for 2 case_ids" in err.value.reason
