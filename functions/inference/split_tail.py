"""Split execution's cloud half: the `split` topic rule invokes this with a head's activation.

The tail of the deployed split model (SPLIT_MODEL, at SPLIT_CUT) finishes the case; the answer goes to
aggregation as a result envelope (source "split"). An activation from another head, at another
cut, of the wrong size or with non-finite values is bad input (see iot_rule).
"""

from __future__ import annotations

from domicile.config.settings import SplitTailSettings, load_settings
from domicile.split.runtime import SplitTail
from domicile.wire.envelope import SplitEnvelope
from functions.inference.iot_rule import RuleEntryPoint

settings = load_settings(SplitTailSettings)
tail = SplitTail(settings.model_dir, settings.split_model, settings.split_cut, settings.intra_op_threads)
entry = RuleEntryPoint(settings)

handler = entry.handler(SplitEnvelope, "iot:split", lambda envelope: tail.answer([envelope])[0], "SplitTails")
