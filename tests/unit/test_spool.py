"""The spool: durable once acknowledged, in order, bounded; crashes lose nothing acknowledged."""

import os
import random
import signal
import subprocess
import sys
import threading

import pytest

from domicile.edge.forward import StoreAndForward
from domicile.edge.spool import Spool, SpoolError
from domicile.edge.transport import TransportUnavailable
from tests.conftest import ROOT


def test_append_and_replay_in_order(tmp_path):
    spool = Spool(tmp_path)
    for i in range(5):
        spool.append(f"t/{i}", f"p{i}".encode())
    reopened = Spool(tmp_path)  # a restart sees the same entries
    assert [(e.topic, e.payload) for e in reopened.pending()] == [(f"t/{i}", f"p{i}".encode()) for i in range(5)]
    first = next(iter(reopened.pending()))
    reopened.remove(first.seq)
    assert len(Spool(tmp_path)) == 4
    assert Spool(tmp_path).append("t/x", b"x") > max(e.seq for e in reopened.pending())


def test_bounded_by_count_and_bytes_evicting_the_oldest(tmp_path):
    spool = Spool(tmp_path / "n", max_entries=3)
    for i in range(5):
        spool.append("t", str(i).encode())
    assert [e.payload for e in spool.pending()] == [b"2", b"3", b"4"]
    assert spool.evicted == 2
    small = Spool(tmp_path / "b", max_bytes=300)
    for i in range(6):
        small.append("t", bytes([i]) * 100)
    assert small.size_bytes <= 300 and small.evicted >= 3
    assert [e.payload[0] for e in small.pending()] == list(range(6))[-len(small) :]
    with pytest.raises(SpoolError, match="cannot fit"):
        small.append("t", b"x" * 1000)


def test_the_input_cursor_survives_a_restart_and_the_publishing_of_its_entry(tmp_path):
    spool = Spool(tmp_path)
    assert spool.resume_point() == 0
    spool.append("t", b"a", cursor=3)
    spool.append("t", b"b")  # a message with no cursor leaves the resume point alone
    spool.append("t", b"c", cursor=5)
    reopened = Spool(tmp_path)
    assert reopened.resume_point() == 5
    assert [e.cursor for e in reopened.pending()] == [3, None, 5]
    StoreAndForward(FlakyTransport(), reopened).replay()  # all published and removed
    assert len(Spool(tmp_path)) == 0 and Spool(tmp_path).resume_point() == 5  # the checkpoint kept it


def test_entries_spooled_by_the_previous_release_are_still_replayed(tmp_path):
    import struct
    import zlib

    body = struct.pack(">4sHI", b"DSP1", 3, 5) + b"t/1" + b"hello"  # the DSP1 layout: no cursor
    (tmp_path / f"{1:020d}.msg").write_bytes(body + struct.pack(">I", zlib.crc32(body)))
    spool = Spool(tmp_path)
    assert [(e.topic, e.payload, e.cursor) for e in spool.pending()] == [("t/1", b"hello", None)]
    assert spool.corrupt == 0 and spool.append("t/2", b"x", cursor=1) == 2


def test_torn_file_is_set_aside_not_replayed(tmp_path):
    spool = Spool(tmp_path)
    seq = spool.append("t", b"hello")
    spool.append("t", b"world")
    path = tmp_path / f"{seq:020d}.msg"
    path.write_bytes(path.read_bytes()[:-3])
    reopened = Spool(tmp_path)
    assert [e.payload for e in reopened.pending()] == [b"world"]
    assert reopened.corrupt == 1 and (tmp_path / "corrupt").is_dir()


WRITER = """
import os, sys
sys.path.insert(0, {root!r})
from domicile.edge.spool import Spool
spool = Spool({path!r}, max_entries=10**7, max_bytes=10**11)  # no eviction here
crash_at = int(os.environ.get("CRASH_AT_REPLACE", "0"))
calls = 0
real_replace = os.replace
def replace(src, dst):
    global calls
    calls += 1
    if calls == crash_at:
        os._exit(9)  # power cut after the data is written and fsync'd, before the rename
    real_replace(src, dst)
os.replace = replace
for i in range(100000):
    seq = spool.append("t/%d" % i, (b"%08d" % i) * 4096)
    print(seq, i, flush=True)  # acknowledged to the caller
"""


def _acknowledged(stdout: str) -> dict[int, int]:
    return {int(seq): int(i) for seq, i in (line.split() for line in stdout.splitlines() if line.strip())}


def _check(tmp_path, acked):
    spool = Spool(tmp_path / "spool", max_entries=10**7, max_bytes=10**11)  # recovery
    assert not list((tmp_path / "spool").glob("*.tmp"))
    entries = {e.seq: e for e in spool.pending()}
    assert spool.corrupt == 0
    for seq, i in acked.items():
        assert entries[seq].payload == (b"%08d" % i) * 4096 and entries[seq].topic == f"t/{i}"
    assert list(entries) == sorted(entries)


def test_kill_at_a_random_moment_loses_nothing_acknowledged(tmp_path):
    script = WRITER.format(root=str(ROOT), path=str(tmp_path / "spool"))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    moment = random.randint(10, 300)  # the kill comes after this many acknowledged writes, mid-write of the next
    watchdog = threading.Timer(120, proc.kill)  # the deadline: a writer that stalls is killed, and the test fails
    watchdog.start()
    try:
        seen = []
        for line in proc.stdout or ():
            seen.append(line)
            if len(seen) >= moment:
                break
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
    assert len(seen) >= moment, f"the writer acknowledged {len(seen)} writes before its deadline, not {moment}"
    _check(tmp_path, _acknowledged("".join(seen) + out))


def test_crash_between_fsync_and_rename(tmp_path):
    script = WRITER.format(root=str(ROOT), path=str(tmp_path / "spool"))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "CRASH_AT_REPLACE": "7"}
    )
    assert result.returncode == 9
    acked = _acknowledged(result.stdout)
    assert len(acked) == 6  # the 7th append never returned
    assert Spool(tmp_path / "spool").torn_writes == 1  # its file, found and discarded at the restart
    _check(tmp_path, acked)
    assert len(Spool(tmp_path / "spool")) == 6


class FlakyTransport:
    def __init__(self):
        self.up = True
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic, payload):
        if not self.up:
            raise TransportUnavailable("down")
        self.sent.append((topic, payload))

    def close(self):
        pass


def test_store_and_forward_keeps_order_across_an_outage(tmp_path):
    transport = FlakyTransport()
    forward = StoreAndForward(transport, Spool(tmp_path))
    forward.send("t", b"1")
    transport.up = False
    forward.send("t", b"2")
    forward.send("t", b"3")
    assert [p for _, p in transport.sent] == [b"1"] and len(forward.spool) == 2
    transport.up = True
    forward.send("t", b"4")  # goes after the spooled ones
    assert [p for _, p in transport.sent] == [b"1", b"2", b"3", b"4"]
    assert forward.stats.as_dict() == {"published": 2, "spooled": 2, "replayed": 2}


def test_crash_during_replay_delivers_at_least_once(tmp_path):
    """Published but not yet removed when the device dies: it is sent again (idempotency dedupes)."""
    transport = FlakyTransport()
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append("t", str(i).encode())
    real_remove = spool.remove
    spool.remove = lambda seq: (_ for _ in ()).throw(SystemExit("power cut"))  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        StoreAndForward(transport, spool).replay()
    spool.remove = real_remove  # type: ignore[method-assign]
    again = StoreAndForward(transport, Spool(tmp_path))
    again.replay()
    payloads = [p for _, p in transport.sent]
    assert payloads == [b"0", b"0", b"1", b"2"]  # one duplicate, nothing lost, order kept
    assert again.stats.as_dict() == {"published": 0, "spooled": 0, "replayed": 3} and len(Spool(tmp_path)) == 0
