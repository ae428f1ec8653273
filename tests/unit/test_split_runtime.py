"""The deployed split: the device's head and the cloud's tail, and the wire format between them."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from domicile.config.project import registry_dir
from domicile.errors import ConfigError, InputError, ModelIntegrityError
from domicile.models.datasets import load_digits_splits
from domicile.models.registry import load_manifest
from domicile.split.codec import ENCODINGS, from_payload, to_payload
from domicile.split.model import INPUT, NAME, OUTPUTS, split_entry, upscale
from domicile.split.runtime import SplitHead, SplitTail
from domicile.wire.envelope import Encoding, SplitEnvelope, parse_envelope

SPLIT_DIR = registry_dir()

TEST = load_digits_splits().test
ENTRY, SPEC = split_entry(load_manifest(SPLIT_DIR), NAME)
CUT = "hidden1"


def _envelopes(head: SplitHead, rows: np.ndarray, first: int = 0) -> list[SplitEnvelope]:
    ids = [f"case-{first + i}" for i in range(len(rows))]
    return [
        SplitEnvelope(device="hamburg-lab-0", fleet="hamburg-lab", jurisdiction="eu", home_region="eu-central-1",
                      model=head.model_ref, payload=payload)
        for payload in head.payloads(ids, head.activations(rows))
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tail() -> SplitTail:
    return SplitTail(SPLIT_DIR, NAME, CUT)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_head_then_tail_over_the_wire_answers_like_the_whole_model(tail, encoding):
    head = SplitHead(SPLIT_DIR, NAME, CUT, encoding)
    # Through JSON, as IoT Core carries it.
    wire = [parse_envelope(e.model_dump_json(exclude_none=True)) for e in _envelopes(head, TEST.x)]
    answers = tail.answer([e for e in wire if isinstance(e, SplitEnvelope)])
    whole = ort.InferenceSession(str(SPLIT_DIR / ENTRY.file), providers=["CPUExecutionProvider"])
    labels, probabilities = whole.run(list(OUTPUTS), {INPUT: upscale(TEST.x)})
    got = np.array([int(a.payload.labels[0]) for a in answers])
    agreement = float(np.mean(got == labels))
    assert agreement == 1.0 if encoding == "float32" else agreement >= 0.99  # quantization may flip a close call
    if encoding == "float32":
        confidence = np.array([a.payload.confidence[0] for a in answers])
        assert np.allclose(confidence, probabilities.max(axis=1), atol=1e-5)
    for request, answer in zip(wire, answers, strict=True):
        result = answer.payload.results[0]
        assert (result.source, result.escalated, result.request_message_id) == ("split", False, request.message_id)
        assert (answer.device, answer.fleet, answer.home_region) == (request.device, request.fleet, "eu-central-1")
        assert answer.model == tail.model_ref
    # the same request answered twice gets the same result id: aggregation counts it once
    assert tail.answer(wire[:1])[0].message_id == answers[0].message_id


def test_the_tail_refuses_what_it_cannot_finish(tail):
    (envelope,) = _envelopes(SplitHead(SPLIT_DIR, NAME, CUT, "float16"), TEST.x[:1])
    payload = envelope.payload

    def with_payload(**changes):
        return envelope.model_copy(update={"payload": payload.model_copy(update=changes)})

    cases = [
        (envelope.model_copy(update={"model": envelope.model.model_copy(update={"sha256": "0" * 64})}),
         "model.sha256", "finishes head"),
        (with_payload(tensor="hidden2"), "payload.tensor", "starts at 'hidden1'"),
        (with_payload(shape=[1, 31]), "payload.shape", "must be [1, 32]"),
        (with_payload(data_b64="not base64!"), "payload.data_b64", "not valid base64"),
        (with_payload(data_b64=base64.b64encode(b"\0" * 10).decode()), "payload.data_b64", "holds 10 bytes"),
        (with_payload(data_b64=base64.b64encode(np.full(32, np.inf, "<f2").tobytes()).decode()),
         "payload.data_b64", "NaN or infinite"),
        (with_payload(dtype="int8", scale=None, data_b64=base64.b64encode(b"\1" * 32).decode()),
         "payload.scale", "positive, finite scale"),
    ]  # fmt: skip
    for bad, field, reason in cases:
        with pytest.raises(InputError) as err:
            tail.answer([bad])
        assert err.value.field == field and reason in err.value.reason, (field, str(err.value))


def test_codec_round_trip_and_sizes():
    row = np.linspace(-3, 5, 32, dtype=np.float32)
    sizes: tuple[tuple[Encoding, int], ...] = (("float32", 128), ("float16", 64), ("int8", 32))
    for encoding, size in sizes:
        payload = to_payload("c", CUT, row, encoding)
        assert len(base64.b64decode(payload.data_b64)) == size
        back = from_payload(payload, CUT, 32)[0]
        assert np.allclose(back, row, atol={"float32": 0, "float16": 5e-3, "int8": 5 / 127}[encoding])


def test_a_cut_never_partitioned_or_unknown_is_a_config_error(tmp_path):
    partition = r"run `domicile split partition --model digits-deep --cut hidden3`"
    with pytest.raises(ConfigError, match=rf"no head for cut 'hidden3'; {partition}"):
        SplitHead(SPLIT_DIR, NAME, "hidden3", "float32")
    with pytest.raises(ConfigError, match="unknown tensor 'hidden9'"):
        SplitTail(SPLIT_DIR, NAME, "hidden9")
    with pytest.raises(
        ConfigError,
        match=r"models.digits-cloud: not a split model in the registry \(split models: "
        r"digits-deep\)",
    ):
        SplitTail(SPLIT_DIR, "digits-cloud", CUT)


def test_a_tampered_head_is_never_loaded(tmp_path):
    folder = tmp_path / "split"
    shutil.copytree(SPLIT_DIR, folder)
    head = SPEC.parts[f"{CUT}/head"]
    blob = bytearray((folder / head.file).read_bytes())
    blob[-1] ^= 0xFF
    (folder / head.file).write_bytes(bytes(blob))
    assert hashlib.sha256(blob).hexdigest() != head.sha256
    with pytest.raises(ModelIntegrityError, match="does not match the manifest"):
        SplitHead(folder, NAME, CUT, "float32")
    registered = json.loads((folder / "manifest.json").read_text())["versions"][NAME][ENTRY.version]
    assert registered["split"]["parts"][f"{CUT}/head"]["sha256"] == head.sha256


def test_the_head_takes_the_sensors_64_values_and_names_bad_input():
    head = SplitHead(SPLIT_DIR, NAME, CUT, "float32")
    assert head.activations(TEST.x[:3]).shape == (3, 32)
    with pytest.raises(InputError, match="features"):
        head.activations([[1.0] * 63])
