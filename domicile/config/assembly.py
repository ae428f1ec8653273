"""A synthesized cloud assembly (`cdk.out`), read as its manifest describes it: each stack's template.

The residency report and the local run both start here, so they read the same stacks the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domicile.errors import ConfigError

JURISDICTION_TAG = "domicile:jurisdiction"


@dataclass(frozen=True)
class AssemblyStack:
    name: str
    region: str  # from the artifact's environment, aws://<account>/<region>
    tags: dict[str, str]
    template: dict[str, Any]

    @property
    def jurisdiction(self) -> str:
        return self.tags.get(JURISDICTION_TAG, "")


def read_assembly(cdk_out: Path) -> list[AssemblyStack]:
    manifest_path = cdk_out / "manifest.json"
    if not manifest_path.exists():
        raise ConfigError(f"{cdk_out}: no cloud assembly (manifest.json); run `make synth` first")
    manifest = json.loads(manifest_path.read_text())
    stacks = []
    for name, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        props = artifact.get("properties", {})
        stacks.append(
            AssemblyStack(
                name=name,
                region=artifact["environment"].rsplit("/", 1)[-1],
                tags=props.get("tags", {}),
                template=json.loads((cdk_out / props["templateFile"]).read_text()),
            )
        )
    return stacks
