"""One contract, two transports: MQTT (paho) and Greengrass (greengrasssdk over the fake runtime)."""

import importlib
import sys
import time
import uuid

import pytest

from domicile.edge.transport import GreengrassTransport, MqttTransport, TransportUnavailable
from tests.conftest import ROOT

FAKE_RUNTIME = ROOT / "tests" / "fakes" / "greengrass"
ROUTER_ARN = "arn:aws:lambda:eu-central-1:123456789012:function:GGRouter"


class MqttSide:
    def __init__(self, broker):
        self.broker = broker
        self.transport = MqttTransport(broker.url, f"dev-{uuid.uuid4().hex[:6]}", ack_timeout_s=2)

    def link_down(self):
        self.broker.stop()
        deadline = time.monotonic() + 10
        while self.transport.connected and time.monotonic() < deadline:
            time.sleep(0.05)

    def link_up(self):
        self.broker.start()
        deadline = time.monotonic() + 15
        while not self.transport.connected and time.monotonic() < deadline:
            time.sleep(0.1)


class GreengrassSide:
    """The real greengrasssdk, on the fake runtime whose core forwards to the broker."""

    def __init__(self, broker, monkeypatch):
        self.broker = broker
        monkeypatch.syspath_prepend(str(FAKE_RUNTIME))
        monkeypatch.setenv("MY_FUNCTION_ARN", "arn:aws:lambda:eu-central-1:123456789012:function:edge:1")
        monkeypatch.setenv("ROUTER_FUNCTION_ARN", ROUTER_ARN)
        for name in [m for m in sys.modules if m.startswith(("greengrass", "greengrasssdk"))]:
            monkeypatch.delitem(sys.modules, name)
        self.ipc = importlib.import_module("greengrass_ipc_python_sdk.ipc_client")
        self.ipc.CORE.start("127.0.0.1", broker.port, ROUTER_ARN)
        self.transport = GreengrassTransport()

    def link_down(self):
        self.ipc.CORE.stop()

    def link_up(self):
        self.ipc.CORE.start("127.0.0.1", self.broker.port, ROUTER_ARN)


@pytest.fixture(params=["mqtt", "greengrass"])
def side(request, broker, monkeypatch):
    made = MqttSide(broker) if request.param == "mqtt" else GreengrassSide(broker, monkeypatch)
    yield made
    made.transport.close()
    if isinstance(made, GreengrassSide):
        made.ipc.CORE.stop()


def test_publish_reaches_the_broker_on_the_topic(side, subscriber):
    side.transport.publish("domicile/eu/f/d/result", b'{"x": 1}')
    assert subscriber.wait_for(1) == [("domicile/eu/f/d/result", b'{"x": 1}')]


def test_messages_arrive_in_order(side, subscriber):
    for i in range(30):
        side.transport.publish("domicile/eu/f/d/result", str(i).encode())
    received = subscriber.wait_for(30)
    assert [payload for _, payload in received] == [str(i).encode() for i in range(30)]


def test_down_link_raises_and_recovers(side, subscriber):
    side.link_down()
    with pytest.raises(TransportUnavailable):
        side.transport.publish("domicile/eu/f/d/result", b"lost?")
    side.link_up()
    # the subscriber reconnects by itself (paho); give it a moment after the broker returns
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            side.transport.publish("domicile/eu/f/d/result", b"back")
            break
        except TransportUnavailable:
            time.sleep(0.2)
    else:
        pytest.fail("transport did not recover")


def test_greengrass_sdk_without_the_runtime_cannot_be_used(monkeypatch):
    """Outside a Greengrass core, the SDK's import fails: that is why it sits behind the interface."""
    for name in [m for m in sys.modules if m.startswith(("greengrass", "greengrasssdk"))]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ModuleNotFoundError, match="greengrass_common"):
        GreengrassTransport()
