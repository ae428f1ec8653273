"""The topology against the registry: every model it places exists, in its role, and each fleet's pair agrees.

An edge model and the cloud model its escalations go to must take the same input and answer with
the same labels, so that an escalated case means the same thing to both.
"""

from __future__ import annotations

from domicile.config.topology import Topology
from domicile.errors import ConfigError
from domicile.models.registry import Manifest, ModelEntry


def _registered(manifest: Manifest, name: str, role: str, key: str) -> ModelEntry:
    entry = manifest.get(name)
    if entry is None:
        raise ConfigError(f"{key}: model {name!r} is not in the registry; register it (`domicile models add`)")
    if entry.role != role:
        raise ConfigError(f"{key}: model {name!r} is a {entry.role} model in the registry, not {role}")
    return entry


def check_topology(topology: Topology, manifest: Manifest) -> None:
    """Raise a ConfigError naming the topology key that the registry cannot serve."""
    for placement in topology.models.values():
        _registered(manifest, placement.name, placement.role.value, f"models.{placement.name}")
    for fleet in topology.fleets.values():
        key = f"fleets.{fleet.name}"
        edge = _registered(manifest, topology.edge_model_of(fleet), "edge", f"{key}.edge_model")
        cloud = _registered(manifest, topology.cloud_model_of(fleet), "cloud", f"{key}.cloud_model")
        for entry, which in ((edge, "edge_model"), (cloud, "cloud_model")):
            if fleet.jurisdiction not in entry.allowed_jurisdictions:
                allowed = ", ".join(entry.allowed_jurisdictions)
                raise ConfigError(f"{key}.{which}: the registry allows {entry.name} {entry.version} only in "
                                  f"{allowed}, not {fleet.jurisdiction!r}")  # fmt: skip
        if (edge.input.case_shape, edge.input.dtype) != (cloud.input.case_shape, cloud.input.dtype):
            raise ConfigError(
                f"{key}.cloud_model: {cloud.name} takes {list(cloud.input.shape)} {cloud.input.dtype}, but the edge "
                f"model {edge.name} takes {list(edge.input.shape)} {edge.input.dtype}; an escalated case must fit both"
            )
        if edge.class_labels != cloud.class_labels:
            raise ConfigError(f"{key}.cloud_model: {cloud.name}'s labels differ from the edge model {edge.name}'s; "
                              "an answer must mean the same from both")  # fmt: skip
