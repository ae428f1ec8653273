"""Split execution's cloud half: the `split` topic rule invokes this with a head's activation.

The tail of the deployed split model (at SPLIT_CUT) finishes the case; the answer goes to
aggregation as a result envelope (source "split"). An activation from another head, at another
cut, of the wrong size or with non-finite values is bad input (see iot_rule).
"""

from __future__ import annotations

from domicile.envelope import SplitEnvelope
from domicile.errors import ConfigError
from domicile.split.runtime import SplitTail
from functions.inference.iot_rule import rule_handler
from functions.inference.shared import settings

if not settings.split_cut:
    raise ConfigError("environment variable SPLIT_CUT is not set (needed by the split-tail entry point)")
tail = SplitTail(settings.model_dir / "split", settings.split_cut, settings.intra_op_threads)

handler = rule_handler(SplitEnvelope, "iot:split", lambda envelope: tail.answer([envelope])[0], "SplitTails")
