"""Property-based: no input makes the envelope parser or the OIP v2 decoder raise anything but InputError.

Whatever arrives (any JSON value, any bytes, envelopes with fields mutated at random), the answer
is either a parsed object or our validation error naming a field: never a crash a caller sees as
a 500, never a partial object.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domicile.errors import InputError
from domicile.models.registry import load_manifest
from domicile.wire.envelope import parse_envelope
from domicile.wire.oip import decode_infer_request
from tests.conftest import MODELS, load_event

ENTRY = load_manifest(MODELS).models["digits-cloud"]
SAMPLES = [load_event("iot-escalate.json"), load_event("iot-split.json"),
           json.loads(load_event("sqs-results.json")["Records"][0]["body"])]  # fmt: skip
FAST = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def _mutate(doc: Any, path: list[Any], value: Any) -> Any:
    """Replace (or delete, when value is ...) the node at `path`."""
    if not path:
        return value
    head, *rest = path
    if isinstance(doc, dict) and head in doc:
        copy = dict(doc)
        if not rest and value is ...:
            del copy[head]
        else:
            copy[head] = _mutate(doc[head], rest, value)
        return copy
    if isinstance(doc, list) and isinstance(head, int) and 0 <= head < len(doc):
        copy_list = list(doc)
        if not rest and value is ...:
            del copy_list[head]
        else:
            copy_list[head] = _mutate(doc[head], rest, value)
        return copy_list
    return doc


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[list[Any]]:
    out = [list(prefix)]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:3]):
            out += _paths(value, (*prefix, i))
    return out


def _only_input_errors(call: Any) -> None:
    try:
        call()
    except InputError as err:
        assert err.field and err.reason  # it names the field and says why


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_an_envelope(raw: bytes) -> None:
    _only_input_errors(lambda: parse_envelope(raw))


@FAST
@given(json_values)
def test_any_json_value_as_an_envelope(value: Any) -> None:
    _only_input_errors(lambda: parse_envelope(json.dumps(value)))


@FAST
@given(st.sampled_from(SAMPLES), st.data(), json_values | st.just(...))
def test_real_envelopes_with_one_field_mutated(sample: dict[str, Any], data: st.DataObject, value: Any) -> None:
    path = data.draw(st.sampled_from(_paths(sample)[1:]))
    mutated = _mutate(sample, path, value)
    _only_input_errors(lambda: parse_envelope(json.dumps(mutated)))
    _only_input_errors(lambda: parse_envelope(mutated) if isinstance(mutated, dict) else None)


@FAST
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_as_an_oip_infer_request(body: bytes) -> None:
    _only_input_errors(lambda: decode_infer_request(body, ENTRY, 64))


@FAST
@given(st.data(), json_values | st.just(...))
def test_a_valid_infer_request_with_one_field_mutated(data: st.DataObject, value: Any) -> None:
    valid = {"id": "r", "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [1.0] * 64}],
             "outputs": [{"name": "label"}]}  # fmt: skip
    path = data.draw(st.sampled_from(_paths(valid)[1:]))
    body = json.dumps(_mutate(valid, path, value)).encode()
    _only_input_errors(lambda: decode_infer_request(body, ENTRY, 64))
