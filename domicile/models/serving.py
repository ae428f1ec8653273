"""What serving a model needs from the registry, read without pydantic: the HTTP function's init path.

The registry's schema is `domicile.models.registry` (pydantic): every manifest is validated by it
when `domicile models` writes it and when a deployment is synthesized from it. A function then only
reads back what a session and a request need, so it reads those members of the same file with the
standard library: importing pydantic cost the HTTP function more cold-start time than onnxruntime
and its two sessions (BENCHMARKS.md, cold init). The sha256 of each model file is still checked
before its session is made (domicile.models.runtime).

The records are NamedTuples, the cheapest read-only records to define (a frozen dataclass costs
about 0.7 ms of import each). They satisfy the protocols of domicile.models.views, as the
registry's pydantic `Manifest` and `ModelEntry` do, so every other caller keeps passing those.
tests/unit/test_serving_manifest.py holds the two readings of every manifest in this repository
equal, member by member.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from domicile.config.project import MANIFEST_FILE
from domicile.errors import ConfigError

if TYPE_CHECKING:
    from domicile.models.views import StagesView

E = TypeVar("E")  # an entry: ServedModel here, the registry's ModelEntry there

# What the inference function and the edge runtime answer by name (a split model is served in parts).
SERVED_ROLES = ("edge", "cloud")


def case_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One case's shape: an input's shape without its batch axis."""
    return shape[1:]


def case_size(shape: tuple[int, ...]) -> int:
    """Values in one case (a flat case, as envelopes and JSON lines may carry it, has this many)."""
    return math.prod(shape[1:])


class ServedTensor(NamedTuple):
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def case_shape(self) -> tuple[int, ...]:
        return case_shape(self.shape)

    @property
    def case_size(self) -> int:
        return case_size(self.shape)


class ServedModel(NamedTuple):
    name: str
    version: str
    role: str
    file: str
    sha256: str
    input: ServedTensor
    label_output: str | None
    probabilities_output: str
    scores: str
    class_labels: tuple[str, ...]


class ServedStages(NamedTuple):
    live: str
    canary: str | None
    history: tuple[str, ...]


# Shared with the registry's pydantic Manifest, so both readings agree on what is deployed.
def deployed_models(versions: Mapping[str, Mapping[str, E]], stages: Mapping[str, StagesView]) -> dict[str, E]:
    """The version of each model a deployment built from the registry serves: the canary while there is one."""
    return {name: versions[name][s.canary or s.live] for name, s in sorted(stages.items())}


def unknown_stage_version(versions: Mapping[str, Mapping[str, Any]], stages: Mapping[str, StagesView]) -> str | None:
    """What is wrong when a stage names a version the registry does not hold, else None."""
    for name, s in stages.items():
        for version in (s.live, s.canary, *s.history):
            if version is not None and version not in versions.get(name, {}):
                return f"stages.{name}: version {version} is not in versions.{name}"
    return None


class ServingManifest(NamedTuple):
    versions: Mapping[str, Mapping[str, ServedModel]]
    stages: Mapping[str, ServedStages]

    @property
    def served(self) -> dict[str, ServedModel]:
        """The deployed edge and cloud models by name, as `Manifest.served` gives them."""
        deployed = deployed_models(self.versions, self.stages)
        return {name: entry for name, entry in deployed.items() if entry.role in SERVED_ROLES}


def _member(obj: Any, key: str, path: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ConfigError(f"{path}: no {key!r} (`domicile models list --models DIR` checks a registry)")
    return obj[key]


def _model(raw: Any, path: str) -> ServedModel:
    tensor = _member(raw, "input", path)
    return ServedModel(
        name=_member(raw, "name", path),
        version=_member(raw, "version", path),
        role=_member(raw, "role", path),
        file=_member(raw, "file", path),
        sha256=_member(raw, "sha256", path),
        input=ServedTensor(
            name=_member(tensor, "name", f"{path}.input"),
            shape=tuple(_member(tensor, "shape", f"{path}.input")),
            dtype=_member(tensor, "dtype", f"{path}.input"),
        ),
        label_output=_member(raw, "label_output", path),
        probabilities_output=_member(raw, "probabilities_output", path),
        scores=raw.get("scores", "probabilities"),
        class_labels=tuple(_member(raw, "class_labels", path)),
    )


def read_serving_manifest(model_dir: Path | str) -> ServingManifest:
    """The served members of `model_dir`'s manifest, or a ConfigError naming what is missing."""
    path = Path(model_dir) / MANIFEST_FILE
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"model manifest {path} does not exist; run `make models`") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from exc
    versions = {
        name: {version: _model(entry, f"{path}: versions.{name}.{version}") for version, entry in by_version.items()}
        for name, by_version in _member(raw, "versions", str(path)).items()
    }
    stages = {
        name: ServedStages(_member(s, "live", f"{path}: stages.{name}"), s.get("canary"), tuple(s.get("history", ())))
        for name, s in _member(raw, "stages", str(path)).items()
    }
    wrong = unknown_stage_version(versions, stages)
    if wrong is not None:
        raise ConfigError(f"{path}: {wrong}")
    return ServingManifest(versions, stages)
