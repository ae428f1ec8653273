"""A device reading a durable input, killed at every spool write it makes: nothing lost, nothing twice.

The device spools every message first (write-ahead) with its input cursor. For each crash point, a
run is cut there (a torn write, a crash right after a publish, a crash right after the cursor
checkpoint), a new device is built from the disk alone and resumes at `spool.resume_point()`. The
cloud's view is the messages received, deduplicated by message id as its idempotency does: every
case must be in it exactly once.
"""

from typing import ClassVar

import pytest

from domicile.config.topology import FleetMode
from domicile.edge.device import EdgeDevice, EdgeModel
from domicile.edge.forward import StoreAndForward
from domicile.edge.spool import Spool
from domicile.edge.transport import TransportUnavailable
from domicile.models.datasets import load_digits_splits
from domicile.models.runtime import ModelRuntime
from domicile.wire.envelope import ResultEnvelope, parse_envelope
from domicile.wire.topics import DeviceIdentity
from domicile_local.sim.devices import tear
from tests.conftest import MODELS

TEST = load_digits_splits().test
IDENTITY = DeviceIdentity("munich-line-0", "munich-line", "eu", "eu-central-1")
CASES = 40
OUTAGE = range(12, 24)  # the link is down for these cases: the spool holds a backlog at some kills


class Crash(BaseException):
    pass


class Link:
    """Records what reached the broker; down during the outage."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.up = True

    def publish(self, topic: str, payload: bytes) -> None:
        if not self.up:
            raise TransportUnavailable("down")
        self.sent.append(payload)

    def close(self) -> None:
        pass


class CrashingSpool(Spool):
    """Counts its writes, publishes' removals and checkpoints; crashes at the chosen one."""

    count: ClassVar[dict[str, int]] = {}  # shared by the crashed device and its successor
    crash_at: ClassVar[tuple[str, int] | None] = None

    def _tick(self, point: str) -> None:
        self.count[point] = self.count.get(point, 0) + 1
        if self.crash_at == (point, self.count[point]):
            raise Crash(point)

    def _place(self, tmp, final):
        if self.crash_at == ("write", self.count.get("write", 0) + 1):
            tear(tmp)
        self._tick("write")
        super()._place(tmp, final)

    def remove(self, seq):
        self._tick("published")  # published, not yet removed
        super().remove(seq)

    def _write_checkpoint(self, cursor):
        super()._write_checkpoint(cursor)
        self._tick("checkpoint")  # the cursor is saved, the entry not yet removed


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def runtime():
    return ModelRuntime(MODELS)


def run(runtime, mode, directory, crash_at):
    """The whole input through a device that crashes at `crash_at` once; returns the link and the restarts."""
    CrashingSpool.count, CrashingSpool.crash_at = {}, crash_at
    link, clock = Link(), Clock()

    def new_device() -> EdgeDevice:
        forward = StoreAndForward(link, CrashingSpool(directory), write_ahead=True)
        return EdgeDevice(IDENTITY, mode, forward, EdgeModel(runtime, "digits-edge", 0.9), clock=clock)

    device, position, restarts = new_device(), 0, 0
    while True:
        try:
            for i in range(position, CASES):
                clock.now = i * 0.1  # 10 cases a second: a result envelope about every 10 cases
                link.up = i not in OUTAGE
                device.infer([f"case-{i}"], TEST.x[i : i + 1], positions=[i])
                device.tick()
            link.up = True
            device.close()
            return link, restarts
        except Crash:
            device, restarts = new_device(), restarts + 1
            position = device.forward.spool.resume_point()


def cloud_view(link):
    """Case ids per distinct message id, as the cloud's idempotency sees them."""
    by_id: dict[str, list[str]] = {}
    for payload in link.sent:
        envelope = parse_envelope(payload)
        cases = envelope.payload.case_ids if isinstance(envelope, ResultEnvelope) else [envelope.payload.case_id]
        assert by_id.setdefault(str(envelope.message_id), cases) == cases  # a repeated id is the same message
    return [case for cases in by_id.values() for case in cases]


@pytest.mark.parametrize("mode", [FleetMode.HYBRID, FleetMode.EDGE_ONLY, FleetMode.CLOUD_ONLY])
def test_a_crash_at_any_point_loses_nothing_and_counts_nothing_twice(runtime, mode, tmp_path):
    link, _ = run(runtime, mode, tmp_path / "clean", None)
    assert sorted(cloud_view(link)) == sorted(f"case-{i}" for i in range(CASES))
    points = dict(CrashingSpool.count)
    assert points["write"] >= 4 and points["published"] == points["write"]
    crash_points = [(point, n) for point, total in points.items() for n in range(1, total + 1)]
    for crash_at in crash_points:
        link, restarts = run(runtime, mode, tmp_path / f"{crash_at[0]}-{crash_at[1]}", crash_at)
        assert restarts == 1, crash_at
        cases = cloud_view(link)
        assert sorted(cases) == sorted(f"case-{i}" for i in range(CASES)), crash_at  # each exactly once


def test_a_torn_write_is_found_and_discarded_on_restart(runtime, tmp_path):
    run(runtime, FleetMode.HYBRID, tmp_path, ("write", 3))
    assert not list(tmp_path.glob("*.tmp"))
    CrashingSpool.crash_at = ("write", 1)
    spool = Spool(tmp_path)
    assert spool.torn_writes == 0 and spool.resume_point() == CASES  # the finished run's cursor


def test_without_positions_a_device_keeps_random_ids_and_no_cursor(runtime, tmp_path):
    """The Greengrass component's local input cannot be replayed: no cursor, a fresh id per message."""
    link = Link()
    device = EdgeDevice(
        IDENTITY, FleetMode.CLOUD_ONLY, StoreAndForward(link, Spool(tmp_path)), EdgeModel(runtime, "digits-edge")
    )
    device.infer(["same"], TEST.x[:1])
    device.infer(["same"], TEST.x[:1])
    first, second = (parse_envelope(p) for p in link.sent)
    assert first.message_id != second.message_id
    assert Spool(tmp_path).resume_point() == 0
