"""What every entry point of the inference function builds the same way, once, at module load.

Powertools' logger and metrics, and the helpers that turn an entry point's own settings
into its ORT sessions. Each entry point parses its own settings class
(domicile.config.settings), so it refuses at init a variable it needs and others do not. boto3
clients and the X-Ray tracer (functions/inference/tracing.py) live in the entry points that call AWS,
so the HTTP function's cold start loads neither boto3 nor the X-Ray SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics

from domicile.config.settings import FunctionSettings, InferenceSettings
from domicile.models.runtime import ModelRuntime
from domicile.models.serving import ServedModel, read_serving_manifest

if TYPE_CHECKING:
    from domicile.models.registry import ModelEntry

logger = Logger(service="domicile-inference")
metrics = Metrics(namespace="Domicile", service="domicile-inference")


def set_dimensions(settings: FunctionSettings) -> None:
    metrics.set_default_dimensions(Region=settings.aws_region, Jurisdiction=settings.jurisdiction)


def warm_runtime(settings: InferenceSettings) -> ModelRuntime[ModelEntry]:
    """The registry's sessions, hash-checked and loaded now (the init phase), not on the first request."""
    runtime = ModelRuntime(settings.model_dir, intra_op_threads=settings.intra_op_threads)
    runtime.warm()
    return runtime


def warm_serving_runtime(settings: InferenceSettings) -> ModelRuntime[ServedModel]:
    """As warm_runtime, from the manifest's served members read without pydantic (the HTTP function)."""
    manifest = read_serving_manifest(settings.model_dir)
    runtime = ModelRuntime(settings.model_dir, manifest, intra_op_threads=settings.intra_op_threads)
    runtime.warm()
    return runtime
