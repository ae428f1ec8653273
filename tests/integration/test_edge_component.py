"""The edge component end to end against a real broker: Greengrass entry point, MQTT outage, replay."""

import importlib
import json
import sys
import time

from domicile.datasets import load_digits_splits
from domicile.edge.device import EdgeDevice
from domicile.edge.forward import StoreAndForward
from domicile.edge.spool import Spool
from domicile.edge.topics import DeviceIdentity
from domicile.edge.transport import MqttTransport
from domicile.envelope import EscalateEnvelope, ResultEnvelope, parse_envelope
from domicile.runtime import ModelRuntime
from domicile.topology import FleetMode
from tests.conftest import MODELS, ROOT

TEST = load_digits_splits().test
ROUTER_ARN = "arn:aws:lambda:eu-central-1:123456789012:function:GGRouter"


def cases_of(messages):
    out: list[str] = []
    for _, payload in messages:
        envelope = parse_envelope(payload)
        if isinstance(envelope, ResultEnvelope):
            out.extend(envelope.payload.case_ids)
        elif isinstance(envelope, EscalateEnvelope):
            out.append(envelope.payload.case_id)
    return out


def test_greengrass_lambda_component_publishes_through_the_core(broker, subscriber, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "fakes" / "greengrass"))
    for name in [m for m in sys.modules if m.startswith(("greengrass", "edge_components.inference.lambda_function"))]:
        monkeypatch.delitem(sys.modules, name)
    env = {
        "MY_FUNCTION_ARN": "arn:aws:lambda:eu-central-1:123456789012:function:edge:1",
        "ROUTER_FUNCTION_ARN": ROUTER_ARN,
        "AWS_IOT_THING_NAME": "munich-line-7",
        "FLEET": "munich-line",
        "JURISDICTION": "eu",
        "HOME_REGION": "eu-central-1",
        "MODE": "hybrid",
        "MODEL_NAME": "digits-edge",
        "MODEL_DIR": str(MODELS),
        "SPOOL_DIR": str(tmp_path / "spool"),
        "MAX_DELAY_S": "0.2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ipc = importlib.import_module("greengrass_ipc_python_sdk.ipc_client")
    ipc.CORE.start("127.0.0.1", broker.port, ROUTER_ARN)
    try:
        component = importlib.import_module("edge_components.inference.lambda_function")
        event = {"cases": [{"case_id": f"k{i}", "features": TEST.x[i].tolist()} for i in range(40)]}
        answer = component.function_handler(event, None)
        assert len(answer["decisions"]) == 40
        bad = component.function_handler({"cases": [{"features": [1, 2]}]}, None)
        assert bad["decisions"] == [] and bad["errors"][0]["field"] == "cases[0].case_id"
        deadline = time.monotonic() + 10
        while sorted(cases_of(subscriber.messages)) != sorted(f"k{i}" for i in range(40)):
            assert time.monotonic() < deadline, "not every case reached the broker"
            time.sleep(0.1)
        topics = {t for t, _ in subscriber.messages}
        assert topics <= {
            "domicile/eu/munich-line/munich-line-7/result",
            "domicile/eu/munich-line/munich-line-7/escalate",
        }
    finally:
        ipc.CORE.stop()


def test_outage_spools_and_replays_in_order_without_loss(broker, tmp_path):
    from tests.broker import Subscriber

    identity = DeviceIdentity("virginia-plant-0", "virginia-plant", "us", "us-east-1")
    transport = MqttTransport(broker.url, identity.device, ack_timeout_s=2)
    device = EdgeDevice(
        identity, ModelRuntime(MODELS), "digits-edge", FleetMode.CLOUD_ONLY, StoreAndForward(transport, Spool(tmp_path))
    )
    device.infer(["a0", "a1"], TEST.x[:2])
    broker.stop()
    while transport.connected:
        time.sleep(0.05)
    device.infer(["b0", "b1", "b2"], TEST.x[2:5])  # link down: spooled, acknowledged
    assert len(device.forward.spool) == 3
    broker.start()
    subscriber = Subscriber(broker)  # subscribed before anything is replayed
    deadline = time.monotonic() + 20
    while len(device.forward.spool):
        assert time.monotonic() < deadline, "spool was not replayed"
        device.tick()
        time.sleep(0.2)
    device.infer(["c0"], TEST.x[5:6])
    transport.close()
    received = cases_of(subscriber.wait_for(4, timeout=10))
    subscriber.close()
    assert received == ["b0", "b1", "b2", "c0"]  # replayed in order, before the new one
    assert device.forward.stats.as_dict() == {"published": 3, "spooled": 3, "replayed": 3}
    assert json.loads(json.dumps(device.stats.as_dict()))["inferences"] == 6
