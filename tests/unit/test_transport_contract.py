"""One contract, three transports, each against what it meets on a real device.

- MQTT: paho against a real broker.
- Greengrass (Lambda component): the real greengrasssdk, through the fake Lambda runtime, into the
  legacy subscription router of a local Greengrass core that deployed the synthesized template.
- IPC (generic component): the real awsiotsdk client against that core's IPC server.
In each, the core reaches the broker over its own MQTT connection, so a broker outage is the
device's outage. The two core transports also refuse what a real core refuses.
"""

import importlib
import sys

import pytest

from domicile.edge.transport import (
    GreengrassTransport,
    IpcTransport,
    MqttTransport,
    TransportRefused,
    TransportUnavailable,
)
from domicile_local.greengrass import LocalCore
from domicile_local.greengrass.ipc import IpcServer
from tests.conftest import ROOT, wait_until

FAKE_RUNTIME = ROOT / "tests" / "fakes" / "greengrass"
ROUTER_ARN = "arn:aws:lambda:eu-central-1:123456789012:function:GGRouter"
THING = "munich-line-0"
TOPIC = f"domicile/eu/munich-line/{THING}/result"  # what munich-line's deployment lets this device publish
EDGE = "com.domicile.edge.munich-line"


class MqttSide:
    def __init__(self, broker, tmp_path, cloud):
        self.broker = broker
        self.link = self.transport = MqttTransport(broker.url, THING, ack_timeout_s=2)


class CoreSide:
    """A local core, deployed from `cloud`, whose link to the broker is its own MQTT connection."""

    transport: GreengrassTransport | IpcTransport

    def __init__(self, broker, tmp_path, cloud):
        self.broker = broker
        self.link = MqttTransport(broker.url, THING, ack_timeout_s=2)
        self.core = LocalCore(tmp_path / "core", THING, "eu-central-1", cloud_publish=self.link.publish)
        self.component = self.core.deploy(cloud, cloud.deployments["domicile-munich-line"])[EDGE]

    def close(self):
        self.core.stop()
        self.link.close()


class GreengrassSide(CoreSide):
    """The real greengrasssdk on the fake runtime, whose core is the local core's router."""

    def __init__(self, broker, tmp_path, cloud, monkeypatch):
        super().__init__(broker, tmp_path, cloud)
        monkeypatch.syspath_prepend(str(FAKE_RUNTIME))
        monkeypatch.setenv("MY_FUNCTION_ARN", self.component.environment["MY_FUNCTION_ARN"])
        monkeypatch.setenv("ROUTER_FUNCTION_ARN", ROUTER_ARN)
        for name in [m for m in sys.modules if m.startswith(("greengrass", "greengrasssdk"))]:
            monkeypatch.delitem(sys.modules, name)
        self.ipc = importlib.import_module("greengrass_ipc_python_sdk.ipc_client")
        self.core_up()
        self.transport = GreengrassTransport()

    def core_up(self):
        self.ipc.CORE.start(ROUTER_ARN, self.core.route_lambda_publish)

    def core_down(self):
        self.ipc.CORE.stop()

    def close(self):
        self.core_down()
        super().close()


class IpcSide(CoreSide):
    """The real awsiotsdk IPC client, with the socket and token the core gave the component."""

    def __init__(self, broker, tmp_path, cloud):
        super().__init__(broker, tmp_path, cloud)
        assert self.core.ipc is not None
        self.transport = IpcTransport(
            socket_path=self.core.ipc.address, auth_token=self.component.environment["SVCUID"]
        )

    def core_down(self):
        assert self.core.ipc is not None
        self.core.ipc.close()

    def core_up(self):
        old = self.core.ipc
        assert old is not None
        self.core.ipc = IpcServer(old.socket_path, old.authorizer, old.publish_to_cloud, tokens=old.tokens)


@pytest.fixture(params=["mqtt", "greengrass", "ipc"])
def side(request, broker, tmp_path, monkeypatch):
    made: MqttSide | CoreSide
    if request.param == "mqtt":
        made = MqttSide(broker, tmp_path, None)
    elif request.param == "greengrass":
        made = GreengrassSide(broker, tmp_path, request.getfixturevalue("greengrass_cloud"), monkeypatch)
    else:
        made = IpcSide(broker, tmp_path, request.getfixturevalue("generic_cloud"))
    wait_until(lambda: made.link.connected, 10, "the device's link did not connect")
    yield made
    made.transport.close()
    if isinstance(made, CoreSide):
        made.close()


@pytest.fixture(params=["greengrass", "ipc"])
def core_side(request, broker, tmp_path, monkeypatch):
    if request.param == "greengrass":
        made: CoreSide = GreengrassSide(broker, tmp_path, request.getfixturevalue("greengrass_cloud"), monkeypatch)
    else:
        made = IpcSide(broker, tmp_path, request.getfixturevalue("generic_cloud"))
    wait_until(lambda: made.link.connected, 10, "the core's link did not connect")
    yield made
    made.transport.close()
    made.close()


def test_publish_reaches_the_broker_on_the_topic(side, subscriber):
    side.transport.publish(TOPIC, b'{"x": 1}')
    assert subscriber.wait_for(1) == [(TOPIC, b'{"x": 1}')]


def test_messages_arrive_in_order(side, subscriber):
    for i in range(30):
        side.transport.publish(TOPIC, str(i).encode())
    received = subscriber.wait_for(30)
    assert [payload for _, payload in received] == [str(i).encode() for i in range(30)]


def test_down_link_raises_and_recovers(side, subscriber):
    side.broker.stop()
    wait_until(lambda: not side.link.connected, 10, "the link did not notice the broker going")
    with pytest.raises(TransportUnavailable) as raised:
        side.transport.publish(TOPIC, b"lost?")
    assert not isinstance(raised.value, TransportRefused)  # an outage, to be retried
    side.broker.start()
    wait_until(lambda: side.link.connected, 15, "the link did not reconnect")
    side.transport.publish(TOPIC, b"back")
    subscriber.wait_subscribed()


def test_a_core_that_is_not_running_is_an_outage_and_recovers(core_side):
    core_side.core_down()
    with pytest.raises(TransportUnavailable) as raised:
        core_side.transport.publish(TOPIC, b"x")
    assert not isinstance(raised.value, TransportRefused)
    core_side.core_up()
    core_side.transport.publish(TOPIC, b"back")


@pytest.mark.parametrize(
    "topic",
    [
        "domicile/eu/munich-line/munich-line-1/result",  # another device's topic
        f"domicile/eu/munich-line/{THING}/split",  # a kind this hybrid fleet does not publish
        f"domicile/eu/berlin-depot/{THING}/result",  # another fleet's topic
    ],
)
def test_the_core_refuses_what_the_deployment_does_not_allow_with_its_own_words(core_side, subscriber, topic):
    with pytest.raises(TransportRefused) as refused:
        core_side.transport.publish(topic, b"x")
    if isinstance(core_side, GreengrassSide):
        # the Lambda manager's 400, as a real core logs it (greengrasssdk raises it as InvocationException)
        assert "No subscription exists for the source" in str(refused.value) and topic in str(refused.value)
        assert "Deploy and configure aws.greengrass.LegacySubscriptionRouter" in str(refused.value)
    else:
        assert "Not Authorized" in str(refused.value)  # IPC UnauthorizedError, as the nucleus answers
    core_side.transport.publish(TOPIC, b"allowed")
    assert [t for t, _ in subscriber.wait_for(1)] == [TOPIC]  # the refused one never reached the broker


def test_greengrass_sdk_without_the_runtime_cannot_be_used(monkeypatch):
    """Outside a Greengrass core, the SDK's import fails: that is why it sits behind the interface."""
    for name in [m for m in sys.modules if m.startswith(("greengrass", "greengrasssdk"))]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ModuleNotFoundError, match="greengrass_common"):
        GreengrassTransport()


def test_ipc_with_a_token_the_core_never_issued_is_refused_at_connect(broker, tmp_path, generic_cloud):
    side = IpcSide(broker, tmp_path, generic_cloud)
    try:
        assert side.core.ipc is not None
        stranger = IpcTransport(socket_path=side.core.ipc.address, auth_token="not-a-svcuid")
        with pytest.raises(TransportUnavailable, match="AccessDenied"):
            stranger.publish(TOPIC, b"x")
        stranger.close()
    finally:
        side.transport.close()
        side.close()
