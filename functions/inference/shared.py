"""Objects every entry point of the inference function reuses across invocations.

Created once at module load (the Lambda init phase): settings and the ORT sessions. boto3 clients
live in the entry points that use them, so the HTTP function's cold start never loads boto3.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from domicile.residency import ResidencyPolicy
from domicile.runtime import ModelRuntime
from domicile.settings import inference_settings

settings = inference_settings()
logger = Logger(service="domicile-inference")
# Patch only what an entry point uses (see sqs_batch/s3_batch): patching everything imports it all.
tracer = Tracer(service="domicile-inference", patch_modules=())
metrics = Metrics(namespace="Domicile", service="domicile-inference")
metrics.set_default_dimensions(Region=settings.aws_region, Jurisdiction=settings.jurisdiction)

residency = ResidencyPolicy.from_settings(settings.aws_region, settings.jurisdiction, settings.allowed_regions)

runtime = ModelRuntime(settings.model_dir, intra_op_threads=settings.intra_op_threads)
runtime.warm()  # hash-check and load every model now, not on the first request
