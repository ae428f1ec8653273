"""The model manifest: what each built model is, where its file is and its sha256."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domicile.drift import InputBaseline
from domicile.errors import ConfigError

MANIFEST_FILE = "manifest.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Frozen):
    name: str
    shape: tuple[int, ...]  # -1 marks the batch dimension
    dtype: str  # numpy dtype name, e.g. "float32"


class ModelMetrics(_Frozen):
    validation_accuracy: float = Field(ge=0, le=1)
    test_accuracy: float = Field(ge=0, le=1)


class EscalationPolicy(_Frozen):
    """When an edge model hands a case to the cloud: confidence below `threshold`.

    The threshold is the lowest one at which the edge's confident answers reach
    `confident_accuracy_target` on the validation split (selective classification).
    """

    threshold: float = Field(ge=0, le=1)
    confident_accuracy_target: float = Field(ge=0, le=1)
    validation_confident_accuracy: float = Field(ge=0, le=1)
    validation_escalation_rate: float = Field(ge=0, le=1)


class ModelEntry(_Frozen):
    name: str
    version: str
    role: str
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    input: TensorSpec
    label_output: str
    probabilities_output: str
    class_labels: tuple[str, ...]
    metrics: ModelMetrics
    allowed_jurisdictions: tuple[str, ...]
    seed: int
    training_data_sha256: str
    description: str = ""
    escalation: EscalationPolicy | None = None  # edge models only
    baseline: InputBaseline | None = None  # the training inputs' distribution, for drift (PSI)

    @property
    def n_features(self) -> int:
        return self.input.shape[-1]


class Manifest(_Frozen):
    schema_version: int = 1
    models: dict[str, ModelEntry]

    def get(self, name: str) -> ModelEntry | None:
        return self.models.get(name)


def load_manifest(model_dir: Path | str | None = None) -> Manifest:
    path = Path(model_dir or DEFAULT_MODEL_DIR) / MANIFEST_FILE
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
