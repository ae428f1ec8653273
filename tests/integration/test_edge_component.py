"""The edge component end to end against a real broker: Greengrass entry point, MQTT outage, replay."""

import importlib
import json
import sys
import time
from pathlib import Path

from domicile.config.topology import FleetMode
from domicile.edge.device import EdgeDevice, EdgeModel
from domicile.edge.forward import StoreAndForward
from domicile.edge.spool import Spool
from domicile.edge.transport import MqttTransport
from domicile.models.datasets import load_digits_splits
from domicile.models.runtime import ModelRuntime
from domicile.wire.envelope import EscalateEnvelope, ResultEnvelope, parse_envelope
from domicile.wire.topics import DeviceIdentity
from domicile_local.greengrass import LocalCore
from tests.conftest import MODELS, ROOT, wait_until

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


def _core(broker, tmp_path, cloud, fleet="munich-line", thing="munich-line-7"):
    link = MqttTransport(broker.url, thing, ack_timeout_s=5)  # the core's own connection to IoT Core
    core = LocalCore(tmp_path / "core", thing, "eu-central-1", cloud_publish=link.publish)
    deployed = core.deploy(cloud, cloud.deployments[f"domicile-{fleet}"])
    return core, link, deployed[f"com.domicile.edge.{fleet}"]


def test_greengrass_lambda_component_runs_as_deployed_and_publishes_through_the_router(
    broker, subscriber, monkeypatch, tmp_path, greengrass_cloud
):
    core, link, component = _core(broker, tmp_path, greengrass_cloud)
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "fakes" / "greengrass"))
    for name in [m for m in sys.modules if m.startswith(("greengrass", "edge_components.inference.lambda_function"))]:
        monkeypatch.delitem(sys.modules, name)
    # The Lambda launcher's environment for the function, as the core deployed it: the model files
    # are read from the model component's unpacked artifact, the spool lives in the work folder.
    for key, value in component.environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ROUTER_FUNCTION_ARN", ROUTER_ARN)
    monkeypatch.setenv("MAX_DELAY_S", "0.2")
    assert Path(component.environment["MODEL_DIR"], "manifest.json").is_file()
    ipc = importlib.import_module("greengrass_ipc_python_sdk.ipc_client")
    ipc.CORE.start(ROUTER_ARN, core.route_lambda_publish)
    try:
        component_module = importlib.import_module("edge_components.inference.lambda_function")
        event = {"cases": [{"case_id": f"k{i}", "features": TEST.x[i].tolist()} for i in range(40)]}
        answer = component_module.function_handler(event, None)
        assert len(answer["decisions"]) == 40
        bad = component_module.function_handler({"cases": [{"features": [1, 2]}]}, None)
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
        assert Path(component.environment["SPOOL_DIR"]).is_dir()  # under work/<component>, as deployed
        assert str(tmp_path / "core" / "work" / "com.domicile.edge.munich-line") in component.environment["SPOOL_DIR"]
    finally:
        ipc.CORE.stop()
        core.stop()
        link.close()


def test_generic_component_runs_as_a_process_the_core_started_and_answers_local_input(
    broker, subscriber, tmp_path, generic_cloud
):
    """The recipe's Run step, started by the core with its Setenv, fed over IPC local publish/subscribe."""
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage

    from domicile_local.greengrass.authorization import PUBSUB

    core, link, component = _core(broker, tmp_path, generic_cloud)
    assert core.ipc is not None
    core.authorizer.register("test.Feeder", {PUBSUB: {"feed": {"operations": ["aws.greengrass#PublishToTopic"],
                                                              "resources": ["domicile/local/+/input"]}}})  # fmt: skip
    process = core.start(component.name)
    feeder = None
    try:
        feeder = GreengrassCoreIPCClientV2(client=connect_ipc(core, "test.Feeder"))
        deadline = time.monotonic() + 60
        while not any(s.pattern.endswith("/munich-line-7/input") for s in core.ipc.subscriptions):
            assert process.poll() is None, (tmp_path / "core/logs" / f"{component.name}.log").read_text()
            assert time.monotonic() < deadline, "the component never subscribed to its input"
            time.sleep(0.1)
        cases = [{"case_id": f"g{i}", "features": TEST.x[i].tolist()} for i in range(30)]
        message = PublishMessage(json_message=JsonMessage(message={"cases": cases}))
        feeder.publish_to_topic(topic="domicile/local/munich-line-7/input", publish_message=message)
        deadline = time.monotonic() + 30
        while sorted(cases_of(subscriber.messages)) != sorted(c["case_id"] for c in cases):
            assert process.poll() is None, (tmp_path / "core/logs" / f"{component.name}.log").read_text()
            assert time.monotonic() < deadline, "not every case reached the broker"
            time.sleep(0.1)
        assert {t for t, _ in subscriber.messages} <= {
            "domicile/eu/munich-line/munich-line-7/result",
            "domicile/eu/munich-line/munich-line-7/escalate",
        }
    finally:
        if feeder is not None:
            feeder.close()
        core.stop()
        link.close()
    log = (tmp_path / "core/logs" / f"{component.name}.log").read_text()
    assert process.returncode is not None and "Traceback" not in log  # it stopped on the core's SIGTERM, cleanly
    assert "ready on domicile/local/munich-line-7/input" in log


def connect_ipc(core, component):
    from awsiot.greengrasscoreipc import connect

    return connect(ipc_socket=core.ipc.address, authtoken=core.ipc.token_for(component))


def test_outage_spools_and_replays_in_order_without_loss(broker, tmp_path):
    from tests.broker import Subscriber

    identity = DeviceIdentity("virginia-plant-0", "virginia-plant", "us", "us-east-1")
    transport = MqttTransport(broker.url, identity.device, ack_timeout_s=2)
    device = EdgeDevice(
        identity,
        FleetMode.CLOUD_ONLY,
        StoreAndForward(transport, Spool(tmp_path)),
        EdgeModel(ModelRuntime(MODELS), "digits-edge"),
    )
    device.infer(["a0", "a1"], TEST.x[:2])
    broker.stop()
    wait_until(lambda: not transport.connected, 30, "the device saw its link go down")
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
