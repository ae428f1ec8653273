"""The model registry (models/manifest.json): every version of every model, and which one is deployed.

One registry for every role: edge and cloud classifiers, and split models (a whole model plus the
head and tail parts it was cut into, in the version's `split` section). Per model: its versions
(each with file, sha256, metrics, training-data fingerprint, drift baseline and allowed
jurisdictions) and its stages: `live` (served everywhere), an optional
`canary` (what the next `cdk deploy` rolls out first: CodeDeploy's canary in the cloud, the staged
Greengrass rollout on devices) and the `history` of earlier live versions that `rollback` returns to.
Versions are immutable: a rebuild that gives other bytes needs a new version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domicile.config.project import MANIFEST_FILE, registry_dir
from domicile.errors import ConfigError
from domicile.models.drift import InputBaseline
from domicile.models.serving import SERVED_ROLES, case_shape, case_size, deployed_models, unknown_stage_version


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The input dtypes a registered model may take (numpy names).
InputDtype = Literal["float32", "float16", "float64", "int8", "uint8", "int32", "int64"]


class TensorSpec(_Frozen):
    """A model's one input: its name, its shape with the batch axis first (-1), and its dtype."""

    name: str
    shape: tuple[int, ...] = Field(min_length=2)
    dtype: InputDtype

    @model_validator(mode="after")
    def _batch_axis_then_fixed_dims(self) -> TensorSpec:
        if self.shape[0] != -1:
            raise ValueError(f"shape: the first axis is the batch axis (-1), got {self.shape[0]}")
        if any(d <= 0 for d in self.shape[1:]):
            raise ValueError(f"shape: every axis but the batch axis needs a fixed size, got {list(self.shape)}")
        return self

    @property
    def case_shape(self) -> tuple[int, ...]:
        return case_shape(self.shape)

    @property
    def case_size(self) -> int:
        return case_size(self.shape)


class ModelMetrics(_Frozen):
    validation_accuracy: float = Field(ge=0, le=1)
    test_accuracy: float | None = Field(default=None, ge=0, le=1)  # a model added with validation data only


class DataFile(_Frozen):
    """A file the registry keeps beside a model version: its validation cases (`x`) and labels (`y`)."""

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    cases: int = Field(gt=0)


class EscalationPolicy(_Frozen):
    """When an edge model hands a case to the cloud: confidence below `threshold`.

    The threshold is the lowest one at which the edge's confident answers reach
    `confident_accuracy_target` on the validation split (selective classification).
    """

    threshold: float = Field(ge=0, le=1)
    confident_accuracy_target: float = Field(ge=0, le=1)
    validation_confident_accuracy: float = Field(ge=0, le=1)
    validation_escalation_rate: float = Field(ge=0, le=1)


class SplitPart(_Frozen):
    """One part of a split model: the head (input -> cut) or the tail (cut -> outputs)."""

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class SplitSpec(_Frozen):
    """Where a split model may be cut, how wide each cut is, and the parts cut so far."""

    cuts: tuple[str, ...] = Field(min_length=1)  # candidate tensors in graph order: the input first
    cut_widths: dict[str, int]  # values per case at each cut
    cut_shapes: dict[str, tuple[int, ...]] = {}  # one case's shape at each cut (absent: flat, its width)
    parts: dict[str, SplitPart] = {}  # "<cut>/head", "<cut>/tail"

    def case_shape(self, cut: str) -> tuple[int, ...]:
        return self.cut_shapes.get(cut, (self.cut_widths[cut],))

    @model_validator(mode="after")
    def _widths_of_cuts(self) -> SplitSpec:
        missing = [cut for cut in self.cuts if cut not in self.cut_widths]
        if missing:
            raise ValueError(f"cut_widths: no width for cut {missing[0]!r}")
        for key in self.parts:
            cut, _, half = key.partition("/")
            if cut not in self.cuts or half not in ("head", "tail"):
                raise ValueError(f"parts.{key}: not '<cut>/head' or '<cut>/tail' of a known cut")
        return self


class ModelEntry(_Frozen):
    name: str
    version: str
    role: Literal["edge", "cloud", "split"]
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    input: TensorSpec
    label_output: str | None  # None: the label is the argmax of the scores
    probabilities_output: str  # the [N, C] scores output
    scores: Literal["probabilities", "logits"] = "probabilities"  # logits: softmax gives the probabilities
    class_labels: tuple[str, ...] = Field(min_length=2)
    metrics: ModelMetrics
    allowed_jurisdictions: tuple[str, ...]
    seed: int | None = None  # models built here; None for a model added from a file
    training_data_sha256: str | None = None
    validation_data: DataFile | None = None  # models added with `models add`
    description: str = ""
    escalation: EscalationPolicy | None = None  # edge models only
    baseline: InputBaseline | None = None  # the training inputs' distribution, for drift (PSI)
    split: SplitSpec | None = None  # split models only

    @model_validator(mode="after")
    def _split_section_for_split_models(self) -> ModelEntry:
        if (self.role == "split") != (self.split is not None):
            needs = "needs" if self.role == "split" else "has no"
            raise ValueError(f"split: a {self.role} model {needs} a split section")
        return self


class Stages(_Frozen):
    live: str
    canary: str | None = None
    history: tuple[str, ...] = ()  # earlier live versions, oldest first


class Manifest(_Frozen):
    schema_version: int = 2
    versions: dict[str, dict[str, ModelEntry]]
    stages: dict[str, Stages]

    @model_validator(mode="after")
    def _stages_name_versions(self) -> Manifest:
        wrong = unknown_stage_version(self.versions, self.stages)
        if wrong is not None:
            raise ValueError(wrong)
        missing = set(self.versions) - set(self.stages)
        if missing:
            raise ValueError(f"stages: no stages for {', '.join(sorted(missing))}")
        return self

    @property
    def models(self) -> dict[str, ModelEntry]:
        """The deployed version of each model."""
        return deployed_models(self.versions, self.stages)

    def with_role(self, *roles: str) -> dict[str, ModelEntry]:
        """The deployed version of each model of these roles."""
        return {name: entry for name, entry in self.models.items() if entry.role in roles}

    @property
    def served(self) -> dict[str, ModelEntry]:
        """What answers requests by name: the deployed edge and cloud models."""
        return self.with_role(*SERVED_ROLES)

    def get(self, name: str) -> ModelEntry | None:
        return self.models.get(name)

    def version(self, name: str, version: str) -> ModelEntry:
        if name not in self.versions:
            raise ConfigError(f"models.{name}: no such model; known: {', '.join(sorted(self.versions))}")
        if version not in self.versions[name]:
            known = ", ".join(sorted(self.versions[name]))
            raise ConfigError(f"models.{name}: no version {version}; known: {known}")
        return self.versions[name][version]


def load_manifest(model_dir: Path | str | None = None) -> Manifest:
    path = registry_dir(model_dir) / MANIFEST_FILE
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"model manifest {path} does not exist; run `make models`") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


def write_manifest(manifest: Manifest, model_dir: Path) -> Path:
    path = model_dir / MANIFEST_FILE
    # Sorted keys and a trailing newline keep the file byte-stable across builds.
    path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    return path
