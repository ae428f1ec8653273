"""Objects every entry point of the inference function reuses across invocations.

Created once at module load (the Lambda init phase): settings, the ORT sessions, boto3 clients.
"""

from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer

from domicile.runtime import ModelRuntime
from domicile.settings import inference_settings

settings = inference_settings()
logger = Logger(service="domicile-inference")
tracer = Tracer(service="domicile-inference")
metrics = Metrics(namespace="Domicile", service="domicile-inference")
metrics.set_default_dimensions(Region=settings.aws_region, Jurisdiction=settings.jurisdiction)

runtime = ModelRuntime(settings.model_dir, intra_op_threads=settings.intra_op_threads)
runtime.warm()  # hash-check and load every model now, not on the first request

sqs = boto3.client("sqs", region_name=settings.aws_region)
s3 = boto3.client("s3", region_name=settings.aws_region)
