"""The Greengrass v2 generic component: the device code of the Lambda component, run as a process.

The nucleus starts it with `python3 -m edge_components.inference.ipc_component` and the recipe's
`Setenv` (the same settings as the Lambda component's environment). It publishes with IPC
`PublishToIoTCore` (`IpcTransport`, allowed by the recipe's `aws.greengrass.ipc.mqttproxy` policy)
and takes device data from local publish/subscribe on `domicile/local/<thing>/input` (IPC
`SubscribeToTopic`, allowed by its `aws.greengrass.ipc.pubsub` policy), in the same shape as the
Lambda component's events. It runs on the full nucleus and on nucleus lite, which has no Lambda.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

from domicile.edge.inputs import answer_device_input
from domicile.edge.transport import IpcTransport
from edge_components.inference.build import build_device
from edge_components.inference.settings import load_edge_settings

logger = logging.getLogger("domicile.edge")
TICK_S = 0.2


def _payload(event: Any) -> Any:
    """A local publish arrives as a JSON message or as bytes (IPC `SubscriptionResponseMessage`)."""
    if event.json_message is not None:
        return event.json_message.message
    return json.loads(event.binary_message.message)


def main() -> int:
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    logging.basicConfig(level=logging.INFO)
    settings = load_edge_settings()
    device = build_device(settings, IpcTransport())
    if device.model_fallback:  # in the component's log; envelopes name the version served
        logger.error("model fallback: %s", device.model_fallback)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # the nucleus stops a component with SIGTERM

    def on_input(event: Any) -> None:
        try:
            answer = answer_device_input(device, _payload(event))
        except (ValueError, AttributeError) as exc:
            logger.warning("rejected device input: body: %s", exc)
            return
        for error in answer["errors"]:  # logged: never dropped silently
            logger.warning("rejected device input: %s: %s", error["field"], error["reason"])

    ipc = GreengrassCoreIPCClientV2()
    topic = f"domicile/local/{settings.aws_iot_thing_name}/input"
    ipc.subscribe_to_topic(topic=topic, on_stream_event=on_input)
    logger.info("edge component for %s ready on %s", settings.fleet, topic)
    while not stop.wait(TICK_S):
        try:
            device.tick()
        except Exception:  # keep ticking: a failed replay is retried on the next tick
            logger.exception("tick failed")
    device.close()
    ipc.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
