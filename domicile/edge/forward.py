"""Store and forward: publish now when the link is up, spool otherwise, replay in order later.

With `write_ahead`, every message is spooled first (with the device's input cursor) and then
published from the spool: the outbox a device needs to resume a durable input after a crash
without sending a case twice under a new message id (see `Spool.resume_point`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from domicile.edge.spool import Spool
from domicile.edge.transport import Transport, TransportRefused, TransportUnavailable


@dataclass
class ForwardStats:
    published: int = 0  # handed to the transport directly
    spooled: int = 0  # written to disk because the link was down (or older messages were waiting)
    replayed: int = 0  # spooled messages later published

    def as_dict(self) -> dict[str, int]:
        return {"published": self.published, "spooled": self.spooled, "replayed": self.replayed}


class StoreAndForward:
    def __init__(self, transport: Transport, spool: Spool, *, write_ahead: bool = False) -> None:
        self.transport = transport
        self.spool = spool
        self.write_ahead = write_ahead
        self.stats = ForwardStats()
        self.last_refusal: str | None = None  # why the core last refused a message (it stays spooled)
        self._lock = threading.Lock()

    def send(self, topic: str, payload: bytes, cursor: int | None = None) -> None:
        """Returns once the message is published or durably spooled: either way, it is not lost."""
        with self._lock:
            if self.write_ahead:
                seq = self.spool.append(topic, payload, cursor)
                if seq in self._replay_locked():
                    self.stats.replayed -= 1  # it went out at once: published, not replayed
                    self.stats.published += 1
                else:
                    self.stats.spooled += 1
                return
            if len(self.spool):
                self._replay_locked()  # keep order: older spooled messages go first
            if not len(self.spool):
                try:
                    self.transport.publish(topic, payload)
                    self.stats.published += 1
                    return
                except TransportRefused as exc:
                    self.last_refusal = str(exc)
                except TransportUnavailable:
                    pass
            self.spool.append(topic, payload, cursor)
            self.stats.spooled += 1

    def replay(self) -> int:
        """Publish spooled messages in order until the link fails again; returns how many went."""
        with self._lock:
            return len(self._replay_locked())

    def _replay_locked(self) -> list[int]:
        sent: list[int] = []
        for entry in self.spool.pending():
            try:
                self.transport.publish(entry.topic, entry.payload)
            except TransportRefused as exc:
                self.last_refusal = str(exc)
                break
            except TransportUnavailable:
                break
            self.spool.remove(entry.seq)
            sent.append(entry.seq)
        self.stats.replayed += len(sent)
        return sent

    @property
    def evicted(self) -> int:
        return self.spool.evicted
