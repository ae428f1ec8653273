"""Handler settings, parsed once from environment variables into a typed object."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from domicile.errors import ConfigError


class InferenceSettings(BaseSettings):
    """Environment of the cloud inference function (names are the upper-case field names)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    aws_region: str
    jurisdiction: str
    model_dir: Path
    default_model: str
    results_queue_url: str | None = None  # SQS path: where result envelopes go
    output_prefix: str = Field(default="results/", pattern=r"^[A-Za-z0-9!_.*'()/-]+/$")
    input_prefix: str = Field(default="incoming/", pattern=r"^[A-Za-z0-9!_.*'()/-]+/$")
    allowed_regions: str = ""  # comma-separated regions of the jurisdiction (default: this region)
    quarantine_bucket: str | None = None  # where residency violations are kept (this region's bucket)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_batch_rows: int = Field(default=1024, gt=0)
    max_object_bytes: int = Field(default=64 * 1_048_576, gt=0)
    intra_op_threads: int = Field(default=1, ge=1)
    split_cut: str | None = None  # split-tail entry point: where the deployed split model is cut


class AggregateSettings(BaseSettings):
    """Environment of the aggregate function."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    aws_region: str
    jurisdiction: str
    aggregates_table: str
    idempotency_table: str
    archive_bucket: str  # also holds the quarantine prefix
    allowed_regions: str = ""
    model_dir: Path | None = None  # the model manifest, for the drift baselines
    idempotency_ttl_s: int = Field(default=24 * 3600, gt=0)


def _explain(exc: ValidationError) -> ConfigError:
    problems = []
    for err in exc.errors():
        var = str(err["loc"][0]).upper() if err["loc"] else "?"
        what = "is not set" if err["type"] == "missing" else f"is invalid: {err['msg']}"
        problems.append(f"environment variable {var} {what}")
    return ConfigError("; ".join(problems))


def load_inference_settings() -> InferenceSettings:
    try:
        return InferenceSettings()  # filled from the environment
    except ValidationError as exc:
        raise _explain(exc) from exc


def load_aggregate_settings() -> AggregateSettings:
    try:
        return AggregateSettings()  # filled from the environment
    except ValidationError as exc:
        raise _explain(exc) from exc


@lru_cache(maxsize=1)
def inference_settings() -> InferenceSettings:
    """The settings of this process, parsed on first use."""
    return load_inference_settings()
