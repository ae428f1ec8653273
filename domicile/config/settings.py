"""Each function's settings: its environment variables, parsed once at init into a typed object.

One class per entry point, each declaring only what that function reads, so a missing variable is
refused at init with its name (`environment variable RESULTS_QUEUE_URL is not set`), never at the
first request. The classes share bases for what several functions have in common.

They are plain pydantic models filled from `os.environ` by `load_settings`, not pydantic-settings:
that package's import (its sources, dotenv and cloud providers) cost about 50 ms of every cold
start, more than a third of `import onnxruntime`, for a lookup of a few variables (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domicile.errors import ConfigError

_PREFIX = r"^[A-Za-z0-9!_.*'()/-]+/$"  # an S3 key prefix ending in '/'


class FunctionSettings(BaseModel):
    """What every function of a regional stack knows: where it runs, and whose data it may touch."""

    # defer_build: a function parses one of these classes, once; building the others' validators at
    # import would only lengthen its cold start.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    aws_region: str
    jurisdiction: str
    allowed_regions: str = ""  # comma-separated regions of the jurisdiction (default: this region)


class InferenceSettings(FunctionSettings):
    """Every inference entry point: the registry it serves from."""

    model_dir: Path
    default_model: str
    intra_op_threads: int = Field(default=1, ge=1)


class HttpSettings(InferenceSettings):
    """The OIP v2 entry point (Function URL or HTTP API)."""

    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_batch_rows: int = Field(default=1024, gt=0)


class S3BatchSettings(InferenceSettings):
    """JSON-lines objects in, results objects out, in the same bucket."""

    input_prefix: str = Field(default="incoming/", pattern=_PREFIX)
    output_prefix: str = Field(default="results/", pattern=_PREFIX)
    max_object_bytes: int = Field(default=64 * 1_048_576, gt=0)


class AnsweringSettings(InferenceSettings):
    """Entry points that answer envelopes onto the results queue and quarantine foreign ones in-region."""

    results_queue_url: str
    quarantine_bucket: str
    # Fleet -> the cloud model that answers its escalations (the topology's `cloud_model`), as JSON;
    # a fleet not listed gets DEFAULT_MODEL.
    fleet_models: dict[str, str] = {}

    def cloud_model_for(self, fleet: str) -> str:
        return self.fleet_models.get(fleet, self.default_model)


class SqsBatchSettings(AnsweringSettings):
    """SQS batches of escalations and, where split fleets live, of split cases (queued cloud path)."""

    split_model: str | None = None  # set where split fleets live: the tail finishes their queued cases
    split_cut: str | None = None


class EscalateSettings(AnsweringSettings):
    """The IoT `escalate` rule's function."""


class SplitTailSettings(AnsweringSettings):
    """The IoT `split` rule's function: the tail of the split model at the deployed cut."""

    split_model: str  # the registry name of the split model
    split_cut: str


class AggregateSettings(FunctionSettings):
    """The aggregate function."""

    aggregates_table: str
    archive_bucket: str  # also holds the quarantine prefix
    model_dir: Path | None = None  # the model manifest, for the drift baselines


S = TypeVar("S", bound=FunctionSettings)


def _explain(exc: ValidationError) -> ConfigError:
    problems = []
    for err in exc.errors():
        var = str(err["loc"][0]).upper() if err["loc"] else "?"
        what = "is not set" if err["type"] == "missing" else f"is invalid: {err['msg']}"
        problems.append(f"environment variable {var} {what}")
    return ConfigError("; ".join(problems))


def _is_structured(annotation: Any) -> bool:
    """A dict or list field: its variable holds JSON (as pydantic-settings reads complex fields)."""
    kinds = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    return any(_is_structured(k) for k in kinds) or typing.get_origin(annotation) in (dict, list)


def environment_values(kind: type[BaseModel], env: typing.Mapping[str, str]) -> dict[str, Any]:
    """The variables `kind` declares (each field's name in upper case), JSON-decoded where the field is."""
    values: dict[str, Any] = {}
    for name, field in kind.model_fields.items():
        raw = env.get(name.upper())
        if raw is None:
            continue
        if _is_structured(field.annotation):
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"environment variable {name.upper()} is invalid: not JSON ({exc})") from exc
        else:
            values[name] = raw
    return values


def load_settings(kind: type[S]) -> S:
    """`kind` filled from this process's environment, or a ConfigError naming each bad variable."""
    try:
        return kind.model_validate(environment_values(kind, os.environ))
    except ValidationError as exc:
        raise _explain(exc) from exc
