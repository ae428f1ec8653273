"""The standalone device runner SIGKILLed in the middle of a spool write, then started with --resume.

A real process, a real kill and a real broker: the first run kills itself while one of its spool
files is half written (before the rename that would make it an entry). The second run recovers
the spool, publishes what was durable, and continues the input from the cursor. Seen from the
cloud, whose idempotency keeps the first copy of each message id, every case arrives exactly once.
"""

import json
import signal
import subprocess
import sys

from domicile.models.datasets import load_digits_splits
from domicile.wire.envelope import ResultEnvelope, parse_envelope
from tests.conftest import ROOT

CASES = 150
KILL_AT_WRITE = 15  # the 15th spool write of the first run is torn: after its first result envelope (~1 s)

KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
real_replace, writes = os.replace, 0
def replace(src, dst):
    global writes
    if str(dst).endswith(".msg"):
        writes += 1
        if writes == {kill_at}:
            os.truncate(src, os.path.getsize(src) // 2)  # half the bytes reached the disk
            os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
os.replace = replace
from edge_components.inference.standalone import main
sys.exit(main(sys.argv[1:]))
"""


def _standalone(args: list[str], kill_at: int | None = None) -> subprocess.CompletedProcess[str]:
    if kill_at is None:
        command = [sys.executable, "-m", "edge_components.inference.standalone", *args]
    else:
        command = [sys.executable, "-c", KILLER.format(root=str(ROOT), kill_at=kill_at), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_killed_device_resumes_and_every_case_arrives_exactly_once(broker, subscriber, tmp_path):
    test = load_digits_splits().test
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps({"case_id": f"c-{i}", "features": test.x[i].tolist()}) + "\n"
                             for i in range(CASES)))  # fmt: skip
    args = ["--broker", broker.url, "--thing", "munich-line-0", "--fleet", "munich-line", "--input", str(cases),
            "--spool-dir", str(tmp_path / "spool"), "--rate", "50"]  # fmt: skip

    killed = _standalone(args, kill_at=KILL_AT_WRITE)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list((tmp_path / "spool").glob("*.tmp")), "the kill left no half-written spool file"
    resumed = _standalone([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert 0 < summary["resumed_at"] < CASES and summary["spool_left"] == 0

    by_id: dict[str, list[str]] = {}
    for _, payload in subscriber.wait_for(KILL_AT_WRITE, timeout=10):
        envelope = parse_envelope(payload)
        ids = envelope.payload.case_ids if isinstance(envelope, ResultEnvelope) else [envelope.payload.case_id]
        assert by_id.setdefault(str(envelope.message_id), ids) == ids  # a repeated id is the same message
    received = sorted(case for ids in by_id.values() for case in ids)
    assert received == sorted(f"c-{i}" for i in range(CASES))  # none lost, none under two ids
