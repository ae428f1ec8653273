"""Store and forward: publish now when the link is up, spool otherwise, replay in order later."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from domicile.edge.spool import Spool
from domicile.edge.transport import Transport, TransportUnavailable


@dataclass
class ForwardStats:
    published: int = 0  # handed to the transport directly
    spooled: int = 0  # written to disk because the link was down (or older messages were waiting)
    replayed: int = 0  # spooled messages later published

    def as_dict(self) -> dict[str, int]:
        return {"published": self.published, "spooled": self.spooled, "replayed": self.replayed}


class StoreAndForward:
    def __init__(self, transport: Transport, spool: Spool) -> None:
        self.transport = transport
        self.spool = spool
        self.stats = ForwardStats()
        self._lock = threading.Lock()

    def send(self, topic: str, payload: bytes) -> None:
        """Returns once the message is published or durably spooled: either way, it is not lost."""
        with self._lock:
            if len(self.spool):
                self._replay_locked()  # keep order: older spooled messages go first
            if not len(self.spool):
                try:
                    self.transport.publish(topic, payload)
                    self.stats.published += 1
                    return
                except TransportUnavailable:
                    pass
            self.spool.append(topic, payload)
            self.stats.spooled += 1

    def replay(self) -> int:
        """Publish spooled messages in order until the link fails again; returns how many went."""
        with self._lock:
            return self._replay_locked()

    def _replay_locked(self) -> int:
        sent = 0
        for entry in self.spool.pending():
            try:
                self.transport.publish(entry.topic, entry.payload)
            except TransportUnavailable:
                break
            self.spool.remove(entry.seq)
            sent += 1
        self.stats.replayed += sent
        return sent

    @property
    def evicted(self) -> int:
        return self.spool.evicted
