"""Escalations from IoT Core: the `escalate` topic rule invokes this with the envelope as the event.

The cloud model answers; the answer goes to aggregation as a result envelope (source "cloud",
escalated). See iot_rule for what happens to bad or foreign envelopes.
"""

from __future__ import annotations

from domicile.cloud import answer_escalations
from domicile.envelope import EscalateEnvelope, ResultEnvelope
from functions.inference.iot_rule import rule_handler
from functions.inference.shared import runtime, settings


def _answer(envelope: EscalateEnvelope) -> ResultEnvelope:
    (answer,) = answer_escalations(runtime, settings.default_model, [envelope])
    return answer


handler = rule_handler(EscalateEnvelope, "iot:escalate", _answer, "Escalations")
