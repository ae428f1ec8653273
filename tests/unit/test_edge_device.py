"""The edge device's decisions, packing and topics, with a recording transport."""

import json
import shutil

import numpy as np
import pytest

from domicile.config.topology import FleetMode
from domicile.edge.device import EdgeDevice, EdgeModel
from domicile.edge.forward import StoreAndForward
from domicile.edge.packer import IOT_METERING_UNIT, PackingLimits
from domicile.edge.spool import Spool
from domicile.errors import ConfigError, ModelIntegrityError
from domicile.models.datasets import load_digits_splits
from domicile.models.runtime import ModelRuntime
from domicile.wire.envelope import EscalateEnvelope, ResultEnvelope, parse_envelope
from domicile.wire.topics import DeviceIdentity, topic_filter
from tests.conftest import MODELS

TEST = load_digits_splits().test
IDENTITY = DeviceIdentity("munich-line-0", "munich-line", "eu", "eu-central-1")


class Recorder:
    def __init__(self):
        self.sent = []

    def publish(self, topic, payload):
        self.sent.append((topic, payload))

    def close(self):
        pass


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def runtime():
    return ModelRuntime(MODELS)


def make(runtime, mode, tmp_path, threshold=None, **kwargs):
    recorder = Recorder()
    clock = Clock()
    device = EdgeDevice(
        IDENTITY, mode, StoreAndForward(recorder, Spool(tmp_path)), EdgeModel(runtime, "digits-edge", threshold),
        clock=clock, **kwargs,
    )  # fmt: skip
    return device, recorder, clock


def envelopes(recorder):
    return [(topic, parse_envelope(payload), len(payload)) for topic, payload in recorder.sent]


def ids(n):
    return [f"c{i}" for i in range(n)]


def test_edge_only_packs_results_under_5kb(runtime, tmp_path):
    device, recorder, _ = make(runtime, FleetMode.EDGE_ONLY, tmp_path)
    device.infer(ids(200), TEST.x[:200])
    device.close()
    sent = envelopes(recorder)
    assert all(topic == "domicile/eu/munich-line/munich-line-0/result" for topic, _, _ in sent)
    assert all(size <= IOT_METERING_UNIT for _, _, size in sent)
    cases = [r.case_id for _, env, _ in sent for r in env.payload.results]
    assert cases == ids(200)  # each case once, in order
    assert len(sent) <= 5  # ~60 bytes a result: dozens per envelope, not one each
    labels = [r.label for _, env, _ in sent for r in env.payload.results]
    expected = runtime.predict("digits-edge", TEST.x[:200]).labels
    assert labels == [str(v) for v in expected]


def test_latency_bound_sends_a_partial_envelope(runtime, tmp_path):
    device, recorder, clock = make(runtime, FleetMode.EDGE_ONLY, tmp_path, packing=PackingLimits(max_delay_s=1.0))
    device.infer(ids(3), TEST.x[:3])
    device.tick()
    assert recorder.sent == []
    clock.now = 1.0
    device.tick()
    ((_, envelope, _),) = envelopes(recorder)
    assert [r.case_id for r in envelope.payload.results] == ids(3)


def test_hybrid_escalates_below_the_threshold_at_once(runtime, tmp_path):
    device, recorder, _ = make(runtime, FleetMode.HYBRID, tmp_path)
    threshold = runtime.entry("digits-edge").escalation.threshold
    assert device.threshold == threshold
    device.infer(ids(len(TEST.x)), TEST.x)
    confidence = runtime.predict("digits-edge", TEST.x).confidence
    expected_escalations = {f"c{i}" for i in np.flatnonzero(confidence < threshold)}
    escalated = [env for topic, env, _ in envelopes(recorder) if topic.endswith("/escalate")]
    assert {e.payload.case_id for e in escalated} == expected_escalations
    assert all(isinstance(e, EscalateEnvelope) and e.payload.edge is not None for e in escalated)
    device.close()
    kept = [r.case_id for t, env, _ in envelopes(recorder) if t.endswith("/result") for r in env.payload.results]
    assert set(kept) | expected_escalations == set(ids(len(TEST.x))) and not set(kept) & expected_escalations
    assert device.stats.escalated == len(expected_escalations) and 0 < len(expected_escalations) < len(TEST.x) / 4


def test_cloud_only_sends_raw_features_without_running_the_model(runtime, tmp_path):
    device, recorder, _ = make(runtime, FleetMode.CLOUD_ONLY, tmp_path)
    device.infer(ids(3), TEST.x[:3])
    sent = envelopes(recorder)
    assert [t.rsplit("/", 1)[1] for t, _, _ in sent] == ["escalate"] * 3
    for i, (_, envelope, _) in enumerate(sent):
        assert envelope.payload.edge is None
        np.testing.assert_array_equal(envelope.payload.features, TEST.x[i])
    features_json = recorder.sent[0][1].split(b'"features":')[1]
    assert b".0" not in features_json  # whole numbers stay short on the wire


def test_bad_input_and_bad_model(runtime, tmp_path):
    device, _, _ = make(runtime, FleetMode.EDGE_ONLY, tmp_path)
    with pytest.raises(Exception, match="64 features"):
        device.infer(["a"], [[1.0] * 10])
    shutil.copytree(MODELS, tmp_path / "m")
    path = tmp_path / "m" / "digits-edge-1.0.0.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelIntegrityError):
        make(ModelRuntime(tmp_path / "m"), FleetMode.EDGE_ONLY, tmp_path / "s")


def test_topics_match_the_rule_filters():
    assert IDENTITY.topic("escalate") == "domicile/eu/munich-line/munich-line-0/escalate"
    assert topic_filter("eu", "result") == "domicile/eu/+/+/result"
    with pytest.raises(ValueError):
        IDENTITY.topic("telemetry")


def test_results_are_compact(runtime, tmp_path):
    device, recorder, _ = make(runtime, FleetMode.EDGE_ONLY, tmp_path)
    device.infer(ids(1), TEST.x[:1])
    device.close()
    body = json.loads(recorder.sent[0][1])
    assert set(body["payload"]) == {
        "source",
        "escalated",
        "case_ids",
        "labels",
        "confidence",
        "latency_ms",
        "input_bins",
    }
    assert isinstance(parse_envelope(recorder.sent[0][1]), ResultEnvelope)


def test_split_mode_sends_each_case_as_the_heads_activation_on_the_split_topic(tmp_path):
    from domicile.config.project import registry_dir
    from domicile.split.runtime import SplitHead, SplitTail
    from domicile.wire.envelope import SplitEnvelope

    head = SplitHead(registry_dir(), "digits-deep", "hidden1", "float16")
    identity = DeviceIdentity("hamburg-lab-0", "hamburg-lab", "eu", "eu-central-1")
    recorder = Recorder()
    device = EdgeDevice(identity, FleetMode.SPLIT, StoreAndForward(recorder, Spool(tmp_path)), head)
    decisions = device.infer([f"c{i}" for i in range(20)], TEST.x[:20])
    device.close()
    assert all(d["split"] and not d["escalated"] for d in decisions)
    assert device.stats.split == 20 and device.stats.kept == device.stats.escalated == 0
    sent = envelopes(recorder)
    assert {topic for topic, _, _ in sent} == {identity.topic("split")} and len(sent) == 20  # no result envelopes
    splits = [e for _, e, _ in sent if isinstance(e, SplitEnvelope)]
    assert [e.payload.case_id for e in splits] == [f"c{i}" for i in range(20)]
    assert all(e.model == head.model_ref and e.payload.dtype == "float16" for e in splits)
    answers = SplitTail(registry_dir(), "digits-deep", "hidden1").answer(splits)  # what the cloud makes of them
    assert np.mean([a.payload.labels[0] == str(y) for a, y in zip(answers, TEST.y[:20], strict=True)]) >= 0.9


def test_split_mode_without_a_head_is_a_config_error(runtime, tmp_path):
    with pytest.raises(ConfigError, match="split needs the split model's head"):
        make(runtime, FleetMode.SPLIT, tmp_path)
