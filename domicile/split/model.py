"""The splittable model's schema: its manifest, its parts and the tensors it can be cut at.

The digits are 8x8; the split model reads them as a 32x32 sensor would deliver them (each pixel a
4x4 block: no new information, a larger input), so that where the model is cut matters: sending the
input costs 1,024 values, the 32-wide bottleneck after the first layer only 32. Layers after the
bottleneck are wide, so running them on a slow device costs time. `split.build` trains and exports it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from domicile.config.project import split_dir
from domicile.models.datasets import CLASS_LABELS

NAME = "digits-deep"
VERSION = "1.0.0"
INPUT = "pixels"
UPSCALE = 4
N_INPUT = 64 * UPSCALE * UPSCALE
HIDDEN = (32, 768, 768)
# Candidate cuts, in graph order: the input (all in the cloud) ... the probabilities (all on the device).
CUTS = ("pixels", "scaled", "hidden1", "hidden2", "hidden3", "probabilities")
OUTPUTS = ("label", "probabilities")
TARGET_OPSET = 17


def upscale(x: np.ndarray) -> np.ndarray:
    """8x8 digits as a 32x32 sensor sees them: every pixel a 4x4 block."""
    blocks = np.kron(np.asarray(x, dtype=np.float32).reshape(-1, 8, 8), np.ones((1, UPSCALE, UPSCALE), np.float32))
    return blocks.reshape(len(blocks), N_INPUT)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartEntry(_Frozen):
    """One ONNX file of the split model: the whole, a head or a tail."""

    file: str
    sha256: str
    size_bytes: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class SplitManifest(_Frozen):
    name: str
    version: str
    seed: int
    training_data_sha256: str
    hidden_layers: tuple[int, ...]
    cuts: tuple[str, ...]
    cut_widths: dict[str, int]
    class_labels: tuple[str, ...]
    test_accuracy: float
    allowed_jurisdictions: tuple[str, ...]
    model: PartEntry
    parts: dict[str, PartEntry] = {}  # "<cut>/head", "<cut>/tail"


def cut_widths() -> dict[str, int]:
    widths = {"pixels": N_INPUT, "scaled": N_INPUT} | {f"hidden{i + 1}": w for i, w in enumerate(HIDDEN)}
    return widths | {"probabilities": len(CLASS_LABELS)}


def part_entry(path: Path, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> PartEntry:
    blob = path.read_bytes()
    return PartEntry(file=path.name, sha256=hashlib.sha256(blob).hexdigest(), size_bytes=len(blob),
                     inputs=inputs, outputs=outputs)  # fmt: skip


def write_split_manifest(manifest: SplitManifest, out_dir: Path) -> Path:
    path = out_dir / "manifest.json"
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def load_split_manifest(model_dir: Path | None = None) -> SplitManifest:
    from domicile.errors import ConfigError

    path = (model_dir or split_dir()) / "manifest.json"
    if not path.exists():
        raise ConfigError(f"{path} does not exist; run `domicile split build`")
    return SplitManifest.model_validate_json(path.read_text())
