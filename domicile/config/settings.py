"""Each function's settings: its environment variables, parsed once at init into a typed object.

One class per entry point, each declaring only what that function reads, so a missing variable is
refused at init with its name (`environment variable RESULTS_QUEUE_URL is not set`), never at the
first request. The classes share bases for what several functions have in common.

They are dataclasses filled from `os.environ` by `load_settings`, which converts each
variable to its field's type and checks the bounds in the field's metadata. Not pydantic: its
import cost the HTTP function more cold-start time than onnxruntime and its sessions together, for
a few flat variables (BENCHMARKS.md, cold init); pydantic-settings, before that, added 50 ms more.
They are read-only once built (`_Sealed`) rather than `frozen=True`: each method a dataclass
generates is an `exec` at import, and frozen ones generate twice as many, about 0.4 ms a class
on the same cold start. Nothing compares settings, so they have no `__eq__` either.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from domicile.errors import ConfigError

_PREFIX = r"^[A-Za-z0-9!_.*'()/-]+/$"  # an S3 key prefix ending in '/'


def _bounded(default: int, **bounds: int) -> Any:
    """An int field with a default and bounds (`ge`, `gt`) that load_settings checks."""
    return field(default=default, metadata=bounds)


class _Sealed:
    """Attributes are set by `__init__` only; afterwards an assignment raises as a frozen dataclass's does."""

    _sealed = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sealed", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._sealed:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


@dataclass(kw_only=True, eq=False)
class FunctionSettings(_Sealed):
    """What every function of a regional stack knows: where it runs, and whose data it may touch."""

    aws_region: str
    jurisdiction: str
    allowed_regions: str = ""  # comma-separated regions of the jurisdiction (default: this region)


@dataclass(kw_only=True, eq=False)
class InferenceSettings(FunctionSettings):
    """Every inference entry point: the registry it serves from."""

    model_dir: Path
    default_model: str
    intra_op_threads: int = _bounded(1, ge=1)


@dataclass(kw_only=True, eq=False)
class HttpSettings(InferenceSettings):
    """The OIP v2 entry point (Function URL or HTTP API)."""

    max_body_bytes: int = _bounded(1_048_576, gt=0)
    max_batch_rows: int = _bounded(1024, gt=0)


@dataclass(kw_only=True, eq=False)
class S3BatchSettings(InferenceSettings):
    """JSON-lines objects in, results objects out, in the same bucket."""

    input_prefix: str = field(default="incoming/", metadata={"pattern": _PREFIX})
    output_prefix: str = field(default="results/", metadata={"pattern": _PREFIX})
    max_object_bytes: int = _bounded(64 * 1_048_576, gt=0)


@dataclass(kw_only=True, eq=False)
class AnsweringSettings(InferenceSettings):
    """Entry points that answer envelopes onto the results queue and quarantine foreign ones in-region."""

    results_queue_url: str
    quarantine_bucket: str
    # Fleet -> the cloud model that answers its escalations (the topology's `cloud_model`), as JSON;
    # a fleet not listed gets DEFAULT_MODEL.
    fleet_models: dict[str, str] = field(default_factory=dict)

    def cloud_model_for(self, fleet: str) -> str:
        return self.fleet_models.get(fleet, self.default_model)


@dataclass(kw_only=True, eq=False)
class SqsBatchSettings(AnsweringSettings):
    """SQS batches of escalations and, where split fleets live, of split cases (queued cloud path)."""

    split_model: str | None = None  # set where split fleets live: the tail finishes their queued cases
    split_cut: str | None = None


@dataclass(kw_only=True, eq=False)
class EscalateSettings(AnsweringSettings):
    """The IoT `escalate` rule's function."""


@dataclass(kw_only=True, eq=False)
class SplitTailSettings(AnsweringSettings):
    """The IoT `split` rule's function: the tail of the split model at the deployed cut."""

    split_model: str  # the registry name of the split model
    split_cut: str


@dataclass(kw_only=True, eq=False)
class AggregateSettings(FunctionSettings):
    """The aggregate function."""

    aggregates_table: str
    archive_bucket: str  # also holds the quarantine prefix
    model_dir: Path | None = None  # the model manifest, for the drift baselines


S = TypeVar("S", bound=FunctionSettings)


def _kinds(annotation: Any) -> tuple[Any, ...]:
    """The types an annotation allows (a union's members, None included)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _is_structured(annotation: Any) -> bool:
    """A dict or list field: its variable holds JSON (as pydantic-settings reads complex fields)."""
    return any(typing.get_origin(k) in (dict, list) for k in _kinds(annotation))


def environment_values(annotations: typing.Mapping[str, Any], env: typing.Mapping[str, str]) -> dict[str, Any]:
    """The variables of these fields (each name in upper case) that are set, JSON-decoded where a field is."""
    values: dict[str, Any] = {}
    for name, annotation in annotations.items():
        raw = env.get(name.upper())
        if raw is None:
            continue
        if _is_structured(annotation):
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"environment variable {name.upper()} is invalid: not JSON ({exc})") from exc
        else:
            values[name] = raw
    return values


def _typed(value: Any, annotation: Any) -> Any:
    """A variable's value as its field's type, or ValueError saying what it should be."""
    kind = next(k for k in _kinds(annotation) if k is not type(None))
    origin = typing.get_origin(kind)
    if origin is dict:
        key_type, value_type = typing.get_args(kind)
        if not isinstance(value, dict) or not all(
            isinstance(k, key_type) and isinstance(v, value_type) for k, v in value.items()
        ):
            raise ValueError(f"should be a JSON object of {value_type.__name__} values")
        return value
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"should be a whole number, not {value!r}") from None
    return Path(value) if kind is Path else str(value)


def _checked(value: Any, metadata: typing.Mapping[str, Any]) -> None:
    if "ge" in metadata and value < metadata["ge"]:
        raise ValueError(f"should be at least {metadata['ge']}, not {value}")
    if "gt" in metadata and value <= metadata["gt"]:
        raise ValueError(f"should be greater than {metadata['gt']}, not {value}")
    if "pattern" in metadata and not re.match(metadata["pattern"], value):
        raise ValueError(f"should match {metadata['pattern']}, not {value!r}")


def load_settings(kind: type[S]) -> S:
    """`kind` filled from this process's environment, or a ConfigError naming each bad variable."""
    annotations = typing.get_type_hints(kind)
    given = environment_values(annotations, os.environ)
    values: dict[str, Any] = {}
    problems = []
    for spec in dataclasses.fields(kind):
        if spec.name not in given:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                problems.append(f"environment variable {spec.name.upper()} is not set")
            continue
        try:
            values[spec.name] = _typed(given[spec.name], annotations[spec.name])
            _checked(values[spec.name], spec.metadata)
        except ValueError as exc:
            problems.append(f"environment variable {spec.name.upper()} is invalid: {exc}")
    if problems:
        raise ConfigError("; ".join(problems))
    return kind(**values)
