"""The Greengrass v2 Lambda-function component (pinned, long-lived) that runs edge inference.

Greengrass starts it once, so the ORT session, the spool and the packer live for the process.
Device data arrives as local publish/subscribe events on `domicile/local/<thing>/input`:
`{"case_id": "...", "features": [64 numbers]}` or `{"cases": [{...}, ...]}`. A background thread
sends result envelopes whose latency bound is up and replays the spool once the link is back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from domicile.edge.transport import GreengrassTransport
from domicile.errors import InputError
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


def _cases(event: Any) -> tuple[list[str], list[Any]]:
    if not isinstance(event, dict):
        raise InputError("event", "must be a JSON object")
    cases = event.get("cases", [event])
    if not isinstance(cases, list) or not cases:
        raise InputError("cases", "must be a non-empty array")
    ids, rows = [], []
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("case_id"), str):
            raise InputError(f"cases[{i}].case_id", "is missing or not a string")
        ids.append(case["case_id"])
        rows.append(case.get("features"))
    return ids, rows


def function_handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        ids, rows = _cases(event)
        decisions = device.infer(ids, rows)
    except InputError as err:
        logger.warning("rejected device input: %s", err)
        return {"error": err.to_dict()}
    return {"decisions": decisions}
