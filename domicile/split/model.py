"""The digits split model's shape, and where a split model's entry and parts live in the registry.

The digits are 8x8; the split model reads them as a 32x32 sensor would deliver them (each pixel a
4x4 block: no new information, a larger input), so that where the model is cut matters: sending the
input costs 1,024 values, the 32-wide bottleneck after the first layer only 32. Layers after the
bottleneck are wide, so running them on a slow device costs time. `split.build` trains and exports it
into the one model registry (`models/manifest.json`, role `split`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from domicile.errors import ConfigError
from domicile.models.datasets import CLASS_LABELS
from domicile.models.registry import Manifest, ModelEntry, SplitPart, SplitSpec

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


def cut_widths() -> dict[str, int]:
    widths = {"pixels": N_INPUT, "scaled": N_INPUT} | {f"hidden{i + 1}": w for i, w in enumerate(HIDDEN)}
    return widths | {"probabilities": len(CLASS_LABELS)}


def part_entry(path: Path, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> SplitPart:
    blob = path.read_bytes()
    return SplitPart(file=path.name, sha256=hashlib.sha256(blob).hexdigest(), size_bytes=len(blob),
                     inputs=inputs, outputs=outputs)  # fmt: skip


def digits_seed(entry: ModelEntry) -> int:
    """The seed of the digits split this split model was built on (its held-out cases check the parts)."""
    if entry.seed is None:
        raise ConfigError(
            f"models.{entry.name}: no validation data to prove or profile its cuts on (register it with "
            "`domicile models add --validation`), and no digits seed"
        )
    return entry.seed


def split_entry(manifest: Manifest, name: str, version: str | None = None) -> tuple[ModelEntry, SplitSpec]:
    """The deployed (or the given) version of split model `name` and its split section.

    Anything else is a ConfigError naming the registry's split models.
    """
    entry = manifest.version(name, version) if version else manifest.get(name)
    if entry is None or entry.split is None:
        known = ", ".join(sorted(manifest.with_role("split"))) or "none"
        raise ConfigError(f"models.{name}: not a split model in the registry (split models: {known})")
    return entry, entry.split
