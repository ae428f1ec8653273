"""Pick the cut that minimises end-to-end latency, device input to answer in the cloud (Neurosurgeon-style).

For a cut k and an encoding: the device runs segments before k (times the device speed factor), the
activation travels in one split envelope (bytes / bandwidth + half the round trip + a per-message
overhead), and the cloud runs the rest (times the cloud speed factor). Cutting at the input is
all-in-the-cloud; cutting at the probabilities is all-on-device (the answer still travels, small).
An option is out when its envelope is over IoT Core's 128 KB or its encoding loses more accuracy
than allowed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import accumulate
from typing import Any

from domicile.errors import ConfigError
from domicile.split.codec import ENCODINGS
from domicile.split.profile import ModelProfile, envelope_bytes
from domicile.wire.envelope import Encoding

IOT_MAX_PAYLOAD = 128 * 1024


@dataclass(frozen=True)
class Network:
    name: str
    bandwidth_mbps: float
    rtt_ms: float
    overhead_ms: float  # per message: MQTT/TLS framing, the broker, the rule

    def transfer_ms(self, size: int) -> float:
        return size * 8 / (self.bandwidth_mbps * 1e6) * 1e3 + self.rtt_ms / 2 + self.overhead_ms


NETWORKS = {
    "3g": Network("3G-like (1 Mbps, 100 ms RTT)", 1.0, 100.0, 5.0),
    "wifi": Network("Wi-Fi (20 Mbps, 20 ms RTT)", 20.0, 20.0, 2.0),
    "lan": Network("LAN (1 Gbps, 1 ms RTT)", 1000.0, 1.0, 0.5),
}


@dataclass(frozen=True)
class Option:
    cut: str
    encoding: str
    edge_ms: float
    bytes: int
    transfer_ms: float
    cloud_ms: float
    total_ms: float
    accuracy_loss_pts: float
    feasible: bool
    why_not: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def options(
    profile: ModelProfile,
    network: Network,
    device_factor: float,
    cloud_factor: float = 1.0,
    encodings: tuple[Encoding, ...] = ENCODINGS,
    max_accuracy_loss_pts: float = 0.5,
    sizes: dict[tuple[int, Encoding], int] | None = None,
) -> list[Option]:
    """Every (cut, encoding), with its latency parts; prefix sums make it one pass over the layers."""
    for field, factor in (("device_factor", device_factor), ("cloud_factor", cloud_factor)):
        if factor <= 0:
            raise ConfigError(f"{field}: a speed factor must be positive, got {factor}")
    unknown = [e for e in encodings if e not in ENCODINGS]
    if unknown:
        raise ConfigError(f"encoding: unknown {unknown[0]!r}; known: {', '.join(ENCODINGS)}")
    before = [0.0, *accumulate(profile.segment_ms)]  # before[k]: time of segments 0..k-1
    total_compute = before[-1] + profile.label_ms
    out = []
    for k, cut in enumerate(profile.cuts):
        for encoding in encodings:
            size = (sizes or {}).get((profile.widths[k], encoding)) or envelope_bytes(profile.widths[k], encoding)
            edge = before[k] * device_factor
            cloud = (total_compute - before[k]) * cloud_factor
            transfer = network.transfer_ms(size)
            loss = profile.accuracy_loss_pts[(cut, encoding)]
            why = ""
            if size > IOT_MAX_PAYLOAD:
                why = f"{size:,} bytes is over IoT Core's 128 KB"
            elif loss > max_accuracy_loss_pts:
                why = f"loses {loss:.2f} accuracy points (allowed {max_accuracy_loss_pts})"
            out.append(Option(cut, encoding, edge, size, transfer, cloud, edge + transfer + cloud, loss, not why, why))
    return out


def choose(candidates: list[Option]) -> Option:
    feasible = [o for o in candidates if o.feasible]
    if not feasible:
        raise ConfigError("no cut fits: every option is over 128 KB or loses too much accuracy")
    return min(feasible, key=lambda o: (o.total_ms, o.bytes))


def best_per_cut(candidates: list[Option]) -> list[Option]:
    """For the table: each cut with its fastest feasible encoding (or its first option, marked out)."""
    rows = []
    for cut in dict.fromkeys(o.cut for o in candidates):
        mine = [o for o in candidates if o.cut == cut]
        feasible = [o for o in mine if o.feasible]
        rows.append(min(feasible, key=lambda o: (o.total_ms, o.bytes)) if feasible else mine[0])
    return rows


def render(rows: list[Option], chosen: Option, network: Network, device_factor: float, cloud_factor: float) -> str:
    lines = [
        f"network: {network.name}, per-message overhead {network.overhead_ms} ms; "
        f"device {device_factor}x and cloud {cloud_factor}x this machine's measured layer times",
        f"{'cut':<14} {'encoding':<8} {'edge ms':>9} {'bytes':>7} {'transfer ms':>11} {'cloud ms':>9} "
        f"{'total ms':>9} {'acc. loss':>9}",
    ]
    for o in rows:
        mark = "  <- chosen" if o == chosen else ("" if o.feasible else f"  (out: {o.why_not})")
        lines.append(
            f"{o.cut:<14} {o.encoding:<8} {o.edge_ms:>9.3f} {o.bytes:>7,} {o.transfer_ms:>11.3f} {o.cloud_ms:>9.3f} "
            f"{o.total_ms:>9.3f} {o.accuracy_loss_pts:>8.2f}p{mark}"
        )
    lines.append(f"choice: cut at {chosen.cut}, {chosen.encoding}, {chosen.total_ms:.2f} ms end to end")
    return "\n".join(lines)
