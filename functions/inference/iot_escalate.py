"""Escalations from IoT Core: the `escalate` topic rule invokes this with the envelope as the event.

The fleet's cloud model answers (FLEET_MODELS, else DEFAULT_MODEL); the answer goes to aggregation
as a result envelope (source "cloud", escalated). See iot_rule for what happens to bad or foreign envelopes.
"""

from __future__ import annotations

from domicile.cloud.answers import answer_escalations
from domicile.config.settings import EscalateSettings, load_settings
from domicile.wire.envelope import EscalateEnvelope, ResultEnvelope
from functions.inference.iot_rule import RuleEntryPoint
from functions.inference.shared import warm_runtime

settings = load_settings(EscalateSettings)
runtime = warm_runtime(settings)
entry = RuleEntryPoint(settings)


def _answer(envelope: EscalateEnvelope) -> ResultEnvelope:
    (answer,) = answer_escalations(runtime, settings.cloud_model_for(envelope.fleet), [envelope])
    return answer


handler = entry.handler(EscalateEnvelope, "iot:escalate", _answer, "Escalations")
