"""Model lifecycle on the registry (models/manifest.json): register, list, promote to canary or all, roll back.

A promotion checks what deploying the version would break before it writes anything: the file
must hash to the registry's sha256, and the model must be allowed in every jurisdiction where the
topology runs it. The registry only records the decision; `cdk deploy` carries it out (a canary
through CodeDeploy and Greengrass' staged rollout, then everywhere).
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path

from domicile.config.project import MANIFEST_FILE
from domicile.config.topology import FleetMode, ModelRole, Topology
from domicile.errors import ConfigError, ModelIntegrityError
from domicile.models.registry import Manifest, ModelEntry, Stages, load_manifest, write_manifest


class Stage(StrEnum):
    CANARY = "canary"
    ALL = "all"


def jurisdictions_running(topology: Topology, entry: ModelEntry) -> set[str]:
    """Where the topology runs a model of this role: edge models on edge fleets, cloud models in every stack."""
    if entry.role == ModelRole.EDGE.value:
        modes = (FleetMode.EDGE_ONLY, FleetMode.HYBRID)
        return {f.jurisdiction for f in topology.fleets.values() if f.mode in modes}
    if entry.role == ModelRole.SPLIT.value:
        return {f.jurisdiction for f in topology.fleets.values() if f.mode is FleetMode.SPLIT}
    return {f.jurisdiction for f in topology.fleets.values()}


def check_registrable(model_dir: Path, entry: ModelEntry) -> Manifest | None:
    """The registry as it is (None if there is none yet), if `entry` may join it; else a ConfigError."""
    manifest = load_manifest(model_dir) if (model_dir / MANIFEST_FILE).exists() else None
    existing = manifest.versions.get(entry.name, {}) if manifest else {}
    known = existing.get(entry.version)
    if known is not None and known.sha256 != entry.sha256:
        raise ConfigError(
            f"models.{entry.name} {entry.version} already exists with sha256 {known.sha256[:12]}; these bytes "
            f"have {entry.sha256[:12]}: versions are immutable, register them as a new version"
        )
    other_role = next((e.role for e in existing.values()), None)
    if other_role is not None and other_role != entry.role:
        raise ConfigError(f"models.{entry.name}: role {entry.role!r}, but the registry has it as {other_role!r}")
    return manifest


def register(model_dir: Path, entry: ModelEntry, blob: bytes, extra: dict[str, bytes] | None = None) -> Manifest:
    """Add a version and its file (and `extra` files, e.g. its validation data) to the registry.

    The version goes live if it is the model's first; otherwise it waits to be promoted.

    Versions are immutable: the same version again must have the same bytes (then nothing changes
    but the entry), and a released file is never overwritten.
    """
    manifest = check_registrable(model_dir, entry)
    versions = {name: dict(v) for name, v in manifest.versions.items()} if manifest else {}
    stages = dict(manifest.stages) if manifest else {}
    known = versions.get(entry.name, {}).get(entry.version)
    if hashlib.sha256(blob).hexdigest() != entry.sha256:
        raise ModelIntegrityError(f"models.{entry.name} {entry.version}: the bytes do not hash to the entry's sha256")
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / entry.file
    if not target.exists() or target.read_bytes() != blob:
        if known is not None and target.exists():
            raise ModelIntegrityError(f"{target}: a released file differs from its registry entry; restore it")
        target.write_bytes(blob)
    for name, content in (extra or {}).items():
        (model_dir / name).write_bytes(content)
    versions.setdefault(entry.name, {})[entry.version] = entry
    stages.setdefault(entry.name, Stages(live=entry.version))
    updated = Manifest(versions=versions, stages=stages)
    write_manifest(updated, model_dir)
    return updated


def check_deployable(model_dir: Path, entry: ModelEntry, topology: Topology) -> None:
    path = model_dir / entry.file
    if not path.exists():
        raise ConfigError(f"models.{entry.name} {entry.version}: {path} does not exist")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != entry.sha256:
        raise ModelIntegrityError(
            f"models.{entry.name} {entry.version}: {path.name} has sha256 {actual[:12]}, the registry says "
            f"{entry.sha256[:12]}; refusing to promote"
        )
    placement = topology.models.get(entry.name)
    cut = placement.cut if placement else None
    if entry.split is not None and cut and f"{cut}/tail" not in entry.split.parts:  # every cut has a tail
        raise ConfigError(
            f"models.{entry.name} {entry.version}: no parts at the topology's cut {cut!r}; run `domicile split "
            f"partition --model {entry.name} --version {entry.version} --cut {cut}` first"
        )
    outside = sorted(jurisdictions_running(topology, entry) - set(entry.allowed_jurisdictions))
    if outside:
        raise ConfigError(
            f"models.{entry.name} {entry.version}: not allowed in jurisdiction {outside[0]!r}, where the topology "
            f"runs it (allowed: {', '.join(entry.allowed_jurisdictions)})"
        )


def promote(model_dir: Path, name: str, version: str, stage: Stage, topology: Topology) -> Manifest:
    manifest = load_manifest(model_dir)
    entry = manifest.version(name, version)
    check_deployable(model_dir, entry, topology)
    current = manifest.stages[name]
    if stage is Stage.CANARY:
        if version == current.live:
            raise ConfigError(f"models.{name}: {version} is already live; a canary must be another version")
        updated = current.model_copy(update={"canary": version})
    elif version == current.live:
        updated = current.model_copy(update={"canary": None})  # confirming what already serves: nothing moves
    else:
        updated = Stages(live=version, canary=None, history=(*current.history, current.live))
    return _save(manifest, model_dir, name, updated)


def rollback(model_dir: Path, name: str) -> tuple[Manifest, str]:
    """Withdraw the canary if there is one, else go back to the previous live version."""
    manifest = load_manifest(model_dir)
    if name not in manifest.stages:
        raise ConfigError(f"models.{name}: no such model; known: {', '.join(sorted(manifest.stages))}")
    current = manifest.stages[name]
    if current.canary:
        updated = current.model_copy(update={"canary": None})
        said = f"{name}: canary {current.canary} withdrawn; {current.live} serves everywhere"
    elif current.history:
        updated = Stages(live=current.history[-1], history=current.history[:-1])
        said = f"{name}: rolled back from {current.live} to {updated.live}"
    else:
        raise ConfigError(f"models.{name}: nothing to roll back to ({current.live} is live and has no predecessor)")
    return _save(manifest, model_dir, name, updated), said


def _save(manifest: Manifest, model_dir: Path, name: str, stages: Stages) -> Manifest:
    updated = Manifest(versions=manifest.versions, stages={**manifest.stages, name: stages})
    write_manifest(updated, model_dir)
    return updated


def stage_of(manifest: Manifest, name: str, version: str) -> str:
    stages = manifest.stages[name]
    if version == stages.live:
        return "live"
    if version == stages.canary:
        return "canary"
    return "previous" if version in stages.history else "not promoted"


def _accuracy(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def listing(manifest: Manifest) -> list[tuple[str, ...]]:
    """One row per version: name, role, version, stage, sha256, size, validation and test accuracy, jurisdictions.

    A model added from a file has no test split: its test accuracy shows as "-".
    """
    rows: list[tuple[str, ...]] = []
    for name, versions in sorted(manifest.versions.items()):
        for version, entry in sorted(versions.items()):
            stage = stage_of(manifest, name, version)
            rows.append((name, entry.role, version, stage, entry.sha256[:12], f"{entry.size_bytes:,}",
                         f"{entry.metrics.validation_accuracy:.4f}", _accuracy(entry.metrics.test_accuracy),
                         ",".join(entry.allowed_jurisdictions)))  # fmt: skip
    return rows
