"""Build an EdgeDevice from settings and a transport: shared by the Greengrass and standalone entry points."""

from __future__ import annotations

from domicile.config.topology import FleetMode
from domicile.edge.device import EdgeDevice, EdgeModel
from domicile.edge.forward import StoreAndForward
from domicile.edge.packer import PackingLimits
from domicile.edge.spool import Spool
from domicile.edge.transport import Transport
from domicile.models.runtime import ModelRuntime
from domicile.split.runtime import SplitHead
from domicile.wire.topics import DeviceIdentity
from edge_components.inference.settings import EdgeSettings


def build_device(
    settings: EdgeSettings, transport: Transport, *, write_ahead: bool = False, spool: Spool | None = None
) -> EdgeDevice:
    """`write_ahead`: spool every message first, for a device that can resume its input (standalone).

    `spool`: a spool of the caller's on `settings.spool_dir` (the local run's power-cut spool).
    """
    identity = DeviceIdentity(
        device=settings.aws_iot_thing_name,
        fleet=settings.fleet,
        jurisdiction=settings.jurisdiction,
        home_region=settings.home_region,
    )
    if spool is None:  # (an empty spool is falsy: it has no entries)
        spool = Spool(settings.spool_dir, settings.spool_max_entries, settings.spool_max_bytes)
    head = None
    if settings.mode is FleetMode.SPLIT and settings.split_cut:  # the settings insist on a cut in split mode
        head = SplitHead(settings.model_dir, settings.model_name, settings.split_cut, settings.split_encoding)
    return EdgeDevice(
        identity,
        settings.mode,
        StoreAndForward(transport, spool, write_ahead=write_ahead),
        head or EdgeModel(ModelRuntime(settings.model_dir), settings.model_name, settings.escalation_threshold),
        packing=PackingLimits(settings.max_envelope_bytes, settings.max_delay_s),
    )
