"""The demo a newcomer runs (`make demo` ends with it), in a fresh process as they would."""

import subprocess
import sys

from tests.conftest import EVENTS, ROOT, run_cli


def test_demo_answers_every_sample_event(synthesized):
    _, _, cdk_out = synthesized  # the demo runs the handlers as the synthesized stack deploys them
    result = run_cli("demo", "--cdk-out", str(cdk_out), timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"handled {len(list(EVENTS.glob('*.json')))} sample events" in out
    assert "http-infer.json -> HTTP 200" in out
    assert "http-infer-bad-shape.json -> HTTP 400" in out
    assert "function-url-infer-binary.json -> HTTP 200" in out and "binary tensor data after the JSON" in out
    assert "s3-put.json -> s3://domicile-data-eu-central-1/results/batch-001.jsonl" in out
    assert '"batchItemFailures":[{"itemIdentifier"' in out


def test_cli_errors_are_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text('[jurisdictions.eu]\nregions = ["eu-moon-1"]\n[models]\n[fleets]\n')
    result = subprocess.run(
        [sys.executable, "-m", "domicile_local.cli", "topology", "check", "--file", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "domicile: error: jurisdictions.eu.regions: unknown AWS region 'eu-moon-1'"
