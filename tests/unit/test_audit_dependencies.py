"""The dependency audit's decisions: what counts as audited, vulnerable, or not audited (no silent pass)."""

import importlib.util
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

_SPEC = importlib.util.spec_from_file_location("audit_dependencies", ROOT / ".ci" / "audit_dependencies.py")
assert _SPEC and _SPEC.loader
audit_dependencies = importlib.util.module_from_spec(_SPEC)
sys.modules["audit_dependencies"] = audit_dependencies  # dataclasses resolve their module by name
_SPEC.loader.exec_module(audit_dependencies)

SKIPPED = "Dependency not found on PyPI and could not be audited"


def project(latest: str, *vulns: str) -> dict[str, Any]:
    return {"info": {"version": latest}, "vulnerabilities": [{"id": v} for v in vulns]}


def test_every_lock_line_is_a_pin(tmp_path: Path):
    lock = tmp_path / "constraints.txt"
    lock.write_text("boolean.py==5.0\n# a comment\npython-dateutil==2.9.0.post0  # why\n\n")
    assert audit_dependencies.locked_pins(lock) == {"boolean.py": "5.0", "python-dateutil": "2.9.0.post0"}
    assert len(audit_dependencies.locked_pins(ROOT / "constraints.txt")) > 100


def test_pip_audit_answers_win_and_its_vulnerabilities_fail_the_audit():
    pins = {"Flask": "3.1.3", "boto3": "1.44.8"}
    pip_audit = [{"name": "flask", "version": "3.1.3", "vulns": [{"id": "GHSA-xxxx"}]},
                 {"name": "boto3", "version": "1.44.8", "vulns": []}]  # fmt: skip
    audit = audit_dependencies.classify(pins, pip_audit, {})
    assert audit.audited_by_pip_audit == ["boto3 1.44.8", "Flask 3.1.3"]
    assert audit.vulnerable == {"Flask 3.1.3": ["GHSA-xxxx"]} and audit.failed


def test_a_skipped_pin_is_audited_only_when_it_is_the_latest_release():
    pins = {"aws-cdk.asset-awscli-v1": "2.2.296", "numpy": "2.4.6", "urllib3": "2.8.0", "moto": "5.2.5"}
    pip_audit = [{"name": canonical, "skip_reason": SKIPPED}
                 for canonical in ("aws-cdk-asset-awscli-v1", "numpy", "urllib3", "moto")]  # fmt: skip
    projects = {
        "aws-cdk.asset-awscli-v1": project("2.2.296"),  # dots in the lock, dashes in pip-audit's answer
        "numpy": project("2.5.5"),  # the lock is behind: PyPI's data here is for 2.5.5 only
        "urllib3": project("2.8.0", "PYSEC-2026-1"),
        "moto": None,  # unreachable
    }
    audit = audit_dependencies.classify(pins, pip_audit, projects)
    assert audit.audited_as_latest == ["aws-cdk.asset-awscli-v1 2.2.296", "urllib3 2.8.0"]
    assert set(audit.not_audited) == {"numpy 2.4.6", "moto 5.2.5"}
    assert "2.5.5" in audit.not_audited["numpy 2.4.6"]
    assert audit.vulnerable == {"urllib3 2.8.0": ["PYSEC-2026-1"]} and audit.failed


def test_nothing_audited_is_a_failure_not_a_pass():
    pins = {"moto": "5.2.5"}
    audit = audit_dependencies.classify(pins, [{"name": "moto", "skip_reason": SKIPPED}], {"moto": None})
    assert audit.audited == 0 and not audit.vulnerable and audit.failed
    assert "Nothing could be audited" in audit_dependencies.report(audit, 1)


def test_a_clean_audit_passes_and_says_what_it_did_not_cover():
    pins = {"boto3": "1.44.8", "numpy": "2.4.6"}
    pip_audit = [{"name": "boto3", "skip_reason": SKIPPED}, {"name": "numpy", "skip_reason": SKIPPED}]
    audit = audit_dependencies.classify(pins, pip_audit, {"boto3": project("1.44.8"), "numpy": project("2.5.5")})
    assert not audit.failed
    text = audit_dependencies.report(audit, 2)
    assert "Audited: 1 (0 by pip-audit, 1 as their project's latest release); not audited: 1." in text
    assert "not audited: numpy 2.4.6" in text and "none." in text
