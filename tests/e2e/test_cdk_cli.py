"""The CDK CLI (as `make synth` and `cdk deploy` run it) refuses an app that breaks residency."""

import os
import subprocess
import sys

from tests.conftest import ROOT

CDK = ROOT / ".tools" / "node_modules" / ".bin" / "cdk"


def test_cdk_synth_fails_on_a_residency_violation(tmp_path):
    assert CDK.exists(), "the CDK CLI is missing: `make setup` installs it"
    app = f"{sys.executable} -c 'from tests.infra import residency_fixtures as fx; fx.explicit_arn().synth()'"
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--output", str(tmp_path / "out"), "--app", app],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true"},
        timeout=300,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "[residency] Explicit/Fn/Resource: explicit reference -> arn:aws:sns:us-east-1" in output
    assert "outside jurisdiction 'eu'" in output
