"""The topology file (domicile.toml): jurisdictions, their regions, models and fleets.

Everything that needs a region name reads it from here, so a residency rule is stated once.
"""

from __future__ import annotations

import json
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domicile.config.project import topology_file
from domicile.errors import ConfigError
from domicile.wire.envelope import Encoding
from domicile.wire.keys import RESERVED_FLEET_NAMES

# Commercial AWS regions that Lambda, IoT Core and Greengrass v2 all serve.
KNOWN_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-2", "ca-central-1",
        "eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1", "eu-south-1",
        "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2",
        "sa-east-1",
    }
)  # fmt: skip

_NAME = r"^[a-z][a-z0-9-]{0,30}$"


class FleetMode(StrEnum):
    EDGE_ONLY = "edge-only"
    CLOUD_ONLY = "cloud-only"
    HYBRID = "hybrid"
    SPLIT = "split"


class EdgeComponentKind(StrEnum):
    """How a fleet's edge code runs on a Greengrass core (README: "Two kinds of edge component")."""

    LAMBDA = "lambda"  # a pinned Lambda-function component publishing with greengrasssdk (legacy router)
    GENERIC = "generic"  # a process publishing over IPC (awsiotsdk); AWS's recommended path, and nucleus lite's only


class CloudPath(StrEnum):
    """How a fleet's escalations and split cases reach the cloud (docs/topology.md, "Cloud path")."""

    QUEUED = "queued"  # the IoT rule sends to the region's request queue; one function run answers a batch
    DIRECT = "direct"  # the IoT rule invokes a function per case (lower latency, one invocation per case)


class ModelRole(StrEnum):
    EDGE = "edge"
    CLOUD = "cloud"
    SPLIT = "split"  # the deep model cut in two: head on the devices of split fleets, tail in the cloud


Name = Annotated[str, Field(pattern=_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Jurisdiction(_Strict):
    name: str
    description: str = ""
    regions: tuple[str, ...] = Field(min_length=1)

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        for region in regions:
            if region not in KNOWN_REGIONS:
                raise ValueError(f"unknown AWS region {region!r}")
        return regions


class ModelPlacement(_Strict):
    name: str
    role: ModelRole
    jurisdictions: tuple[str, ...] = Field(min_length=1)
    # Split models only: the tensor where the graph is cut (`domicile split plan` says which is
    # fastest for a network) and how the activation travels.
    cut: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    encoding: Encoding | None = None

    @model_validator(mode="after")
    def _cut_for_split_only(self) -> ModelPlacement:
        if self.role is ModelRole.SPLIT and self.cut is None:
            raise ValueError("cut: a split model needs the tensor to cut at (see `domicile split plan`)")
        if self.role is not ModelRole.SPLIT and (self.cut is not None or self.encoding is not None):
            raise ValueError(f"cut: only a split model is cut; this model's role is {self.role.value!r}")
        return self


class Fleet(_Strict):
    name: str
    jurisdiction: str
    home_region: str
    devices: int = Field(ge=1, le=10_000)
    mode: FleetMode
    component: EdgeComponentKind = EdgeComponentKind.LAMBDA
    cloud_path: CloudPath = CloudPath.QUEUED
    # The models this fleet uses; default: the topology's only model of that role.
    edge_model: str | None = None
    cloud_model: str | None = None


class Concurrency(_Strict):
    """Reserved concurrent executions of each function, in every region (docs/topology.md, "Concurrency").

    A cap on what a function can cost: a Function URL with none is an open bill. The SQS-fed functions'
    event sources take the same number as their maximum concurrency (at least 2, SQS's minimum), so a full
    queue waits instead of throttling into its DLQ.
    """

    http: int = Field(default=10, ge=1)
    batch: int = Field(default=5, ge=2)  # queued escalations and split cases, and SQS batch inference
    s3: int = Field(default=2, ge=1)
    escalate: int = Field(default=10, ge=1)  # the direct cloud path
    split_tail: int = Field(default=10, ge=1)
    aggregate: int = Field(default=5, ge=2)


class Topology(_Strict):
    jurisdictions: dict[Name, Jurisdiction]
    models: dict[Name, ModelPlacement]
    fleets: dict[Name, Fleet]
    concurrency: Concurrency = Concurrency()

    def regions_of(self, jurisdiction: str) -> tuple[str, ...]:
        return self.jurisdictions[jurisdiction].regions

    def home_regions(self) -> list[str]:
        """Regions where something is deployed, in a stable order."""
        return sorted({fleet.home_region for fleet in self.fleets.values()})

    def jurisdiction_of_region(self, region: str) -> str:
        """The jurisdiction whose data a stack in `region` holds (fleets decide it)."""
        owners = {f.jurisdiction for f in self.fleets.values() if f.home_region == region}
        if len(owners) != 1:
            raise ConfigError(f"region {region!r} is home to fleets of {sorted(owners) or 'no'} jurisdiction(s)")
        return owners.pop()

    def fleets_in(self, region: str) -> list[Fleet]:
        return [f for f in self.fleets.values() if f.home_region == region]

    def split_model(self) -> ModelPlacement | None:
        return next((m for m in self.models.values() if m.role is ModelRole.SPLIT), None)

    def model_for(self, role: ModelRole) -> ModelPlacement:
        for model in self.models.values():
            if model.role is role:
                return model
        raise ConfigError(f"models: no model has role {role.value!r}")

    def edge_model_of(self, fleet: Fleet) -> str:
        """The edge model a fleet's devices run (or, cloud-only, whose input they send)."""
        return fleet.edge_model or self.model_for(ModelRole.EDGE).name

    def cloud_model_of(self, fleet: Fleet) -> str:
        """The cloud model that answers a fleet's escalations."""
        return fleet.cloud_model or self.model_for(ModelRole.CLOUD).name

    def cloud_paths_in(self, region: str, kind: str) -> dict[CloudPath, list[str]]:
        """The fleets at home in `region` whose `kind` ("escalate" or "split") envelopes take each path."""
        sends = (FleetMode.SPLIT,) if kind == "split" else (FleetMode.HYBRID, FleetMode.CLOUD_ONLY)
        paths: dict[CloudPath, list[str]] = {}
        for fleet in self.fleets_in(region):
            if fleet.mode in sends:
                paths.setdefault(fleet.cloud_path, []).append(fleet.name)
        return paths

    def cloud_models_in(self, region: str) -> dict[str, str]:
        """Fleet name -> its cloud model, for the fleets at home in `region`."""
        return {fleet.name: self.cloud_model_of(fleet) for fleet in self.fleets_in(region)}


def _with_names(section: Any) -> Any:
    """Copy each table's key into its `name` field so errors and objects carry it."""
    if not isinstance(section, dict):
        return section
    return {key: ({**value, "name": key} if isinstance(value, dict) else value) for key, value in section.items()}


def _check_jurisdictions(topo: Topology) -> None:
    region_owner: dict[str, str] = {}
    for jur in topo.jurisdictions.values():
        for region in jur.regions:
            if region in region_owner:
                raise ConfigError(
                    f"jurisdictions.{jur.name}.regions: {region} already belongs to {region_owner[region]}"
                )
            region_owner[region] = jur.name
    for model in topo.models.values():
        for jur_name in model.jurisdictions:
            if jur_name not in topo.jurisdictions:
                raise ConfigError(f"models.{model.name}.jurisdictions: unknown jurisdiction {jur_name!r}")


def _check_fleet_placement(topo: Topology) -> None:
    for fleet in topo.fleets.values():
        key = f"fleets.{fleet.name}"
        if fleet.name in RESERVED_FLEET_NAMES:  # `drift#...` and `msg#...` rows would read as this fleet's counts
            raise ConfigError(f"{key}: the name {fleet.name!r} is reserved by the aggregates table's keys")
        if fleet.jurisdiction not in topo.jurisdictions:
            raise ConfigError(f"{key}.jurisdiction: unknown jurisdiction {fleet.jurisdiction!r}")
        allowed = topo.jurisdictions[fleet.jurisdiction].regions
        if fleet.home_region not in allowed:
            raise ConfigError(
                f"{key}.home_region: {fleet.home_region} is outside jurisdiction "
                f"{fleet.jurisdiction!r} (allowed: {', '.join(allowed)})"
            )


def _check_fleet_models(topo: Topology) -> None:
    """Each fleet's edge and cloud model: named (when the role has several), of that role, allowed there."""
    for role in (ModelRole.EDGE, ModelRole.CLOUD):
        models = [m.name for m in topo.models.values() if m.role is role]
        if not models:
            raise ConfigError(f"models: no model has role {role.value!r}")
        for fleet in topo.fleets.values():
            key = f"fleets.{fleet.name}.{role.value}_model"
            name = fleet.edge_model if role is ModelRole.EDGE else fleet.cloud_model
            if name is None and len(models) > 1:
                raise ConfigError(f"{key}: several models have role {role.value!r} ({', '.join(models)}); name one")
            if name is not None and name not in models:
                raise ConfigError(f"{key}: {name!r} is not a model with role {role.value!r} (those are "
                                  f"{', '.join(models)})")  # fmt: skip
            placement = topo.models[name or models[0]]
            if fleet.jurisdiction not in placement.jurisdictions:
                allowed = ", ".join(placement.jurisdictions)
                raise ConfigError(f"{key}: model {placement.name!r} may not run in jurisdiction "
                                  f"{fleet.jurisdiction!r} (allowed: {allowed})")  # fmt: skip


def _check_roles(topo: Topology) -> None:
    _check_fleet_models(topo)
    splits = [m for m in topo.models.values() if m.role is ModelRole.SPLIT]
    if len(splits) > 1:
        raise ConfigError("models: at most one model may have role 'split'")
    for fleet in topo.fleets.values():
        if fleet.mode is FleetMode.SPLIT and not splits:
            raise ConfigError(f"fleets.{fleet.name}.mode: split needs a model with role 'split' (and its cut)")
        if fleet.mode is FleetMode.SPLIT and fleet.jurisdiction not in splits[0].jurisdictions:
            raise ConfigError(
                f"fleets.{fleet.name}.mode: model {splits[0].name!r} may not run in jurisdiction {fleet.jurisdiction!r}"
            )


def _cross_check(topo: Topology) -> None:
    """What one table cannot say about itself: names across tables, regions owned once, roles."""
    _check_jurisdictions(topo)
    _check_fleet_placement(topo)
    _check_roles(topo)


def parse_topology(data: dict[str, Any]) -> Topology:
    """Validate a parsed TOML document; errors name the dotted key and the reason."""
    shaped = {key: _with_names(value) for key, value in data.items()}
    try:
        topo = Topology.model_validate(shaped)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{key}: {first['msg'].removeprefix('Value error, ')}") from exc
    _cross_check(topo)
    return topo


def with_fleet_overrides(
    topology: Topology, *, mode: FleetMode | None = None, component: EdgeComponentKind | None = None
) -> Topology:
    """The topology with every fleet's mode and/or component kind replaced, validated again."""
    data = topology.model_dump(mode="json")
    for fleet in data["fleets"].values():
        fleet.update({k: v for k, v in (("mode", mode), ("component", component)) if v is not None})
    return parse_topology(data)


def load_topology(path: Path | str | None = None) -> Topology:
    """Read a topology file: TOML, or the JSON that `Topology.model_dump_json` writes (a run's resolved topology)."""
    path = topology_file(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"topology file {path} does not exist") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from exc
    return parse_topology(data)


def slug(text: str) -> str:
    """A CloudFormation-friendly PascalCase form of a name like `eu-central-1`."""
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]", text) if part)
