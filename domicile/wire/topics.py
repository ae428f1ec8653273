"""MQTT topics: domicile/<jurisdiction>/<fleet>/<device>/<kind>.

The jurisdiction leads the topic so one IoT rule per jurisdiction and kind can select exactly
its own traffic, and a device's IoT policy can allow only its own topics.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "domicile"
KINDS = ("result", "escalate", "split")


@dataclass(frozen=True)
class DeviceIdentity:
    device: str
    fleet: str
    jurisdiction: str
    home_region: str

    def topic(self, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown topic kind {kind!r}")
        return f"{ROOT}/{self.jurisdiction}/{self.fleet}/{self.device}/{kind}"


def topic_filter(jurisdiction: str, kind: str) -> str:
    """The MQTT filter an IoT rule of `jurisdiction` uses for `kind` (any fleet, any device)."""
    return f"{ROOT}/{jurisdiction}/+/+/{kind}"
