"""The Greengrass v2 Lambda-function component (pinned, long-lived) that runs edge inference.

Greengrass starts it once, so the ORT session, the spool and the packer live for the process.
Device data arrives as local publish/subscribe events on `domicile/local/<thing>/input`:
`{"case_id": "...", "features": [64 numbers]}` or `{"cases": [{...}, ...]}`; a bad case is refused
alone, with its field and reason (`domicile.edge.inputs`). A background thread
sends result envelopes whose latency bound is up and replays the spool once the link is back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from domicile.edge.inputs import answer_device_input
from domicile.edge.transport import GreengrassTransport
from edge_components.inference.build import build_device
from edge_components.inference.settings import load_edge_settings

logger = logging.getLogger("domicile.edge")
TICK_S = 0.2

settings = load_edge_settings()
device = build_device(settings, GreengrassTransport())
if device.model_fallback:  # in the component's log (CloudWatch via Greengrass); envelopes name the version served
    logger.error("model fallback: %s", device.model_fallback)


def _ticker() -> None:
    while True:
        try:
            device.tick()
        except Exception:  # keep ticking: a failed replay is retried on the next tick
            logger.exception("tick failed")
        threading.Event().wait(TICK_S)


threading.Thread(target=_ticker, name="domicile-tick", daemon=True).start()


def function_handler(event: Any, context: Any) -> dict[str, Any]:
    answer = answer_device_input(device, event)
    for error in answer["errors"]:  # answered to the caller and logged: never dropped silently
        logger.warning("rejected device input: %s: %s", error["field"], error["reason"])
    return answer
