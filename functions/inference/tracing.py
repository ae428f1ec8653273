"""The X-Ray tracer of the entry points that call AWS, with botocore patched so each call is a subsegment.

The HTTP entry point makes no AWS call and does not import this: the X-Ray SDK (and the botocore
it patches) cost about 60 ms of every cold start, and Lambda's active tracing records that
function's invocation and init segments without it (BENCHMARKS.md, docs/inference.md).
"""

from __future__ import annotations

from aws_lambda_powertools import Tracer

tracer = Tracer(service="domicile-inference", patch_modules=("botocore",))
