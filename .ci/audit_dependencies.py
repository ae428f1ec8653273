"""Audit the locked dependencies (constraints.txt) for known vulnerabilities; `make audit`, in CI.

pip-audit asks PyPI's release endpoint (`/pypi/<name>/<version>/json`) about each pin. Where that
endpoint does not answer (from these machines it returns 404 for every release, and OSV is not
reachable), pip-audit skips the pin and still prints "No known vulnerabilities found". Each
skipped pin is then checked against the project endpoint (`/pypi/<name>/json`), whose
`vulnerabilities` are those of the project's latest release: they hold for the pin only when the
pin is that release. Any other pin is listed as not audited, never passed silently.

Exit 1 on a known vulnerability, or when no pin could be audited at all; 0 otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT_URL = "https://pypi.org/pypi/{name}/json"


@dataclass
class Audit:
    audited_by_pip_audit: list[str] = field(default_factory=list)
    audited_as_latest: list[str] = field(default_factory=list)
    not_audited: dict[str, str] = field(default_factory=dict)  # pin -> why
    vulnerable: dict[str, list[str]] = field(default_factory=dict)  # pin -> advisory ids

    @property
    def audited(self) -> int:
        return len(self.audited_by_pip_audit) + len(self.audited_as_latest)

    @property
    def failed(self) -> bool:
        return bool(self.vulnerable) or self.audited == 0


def locked_pins(constraints: Path) -> dict[str, str]:
    """name -> version of every `name==version` line."""
    pins = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            pins[requirement.name] = spec.version
    return pins


def run_pip_audit(constraints: Path) -> list[dict[str, Any]]:
    """pip-audit's per-dependency answers: `vulns`, or a `skip_reason` when it could not audit one."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "pip-audit.json"
        command = [sys.executable, "-m", "pip_audit", "-r", str(constraints), "--no-deps", "--disable-pip",
                   "--progress-spinner", "off", "--format", "json", "--output", str(report)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if not report.exists():
            raise SystemExit(f"pip-audit wrote no report (exit {result.returncode}): {result.stderr[-2000:]}")
        dependencies: list[dict[str, Any]] = json.loads(report.read_text())["dependencies"]
        return dependencies


def latest_release(name: str) -> dict[str, Any] | None:
    """The project endpoint's answer (the latest release and its vulnerabilities), None if unreachable."""
    for attempt in range(4):
        try:
            with urllib.request.urlopen(PROJECT_URL.format(name=name), timeout=30) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError):
            time.sleep(2**attempt)  # the proxy drops a request now and then
    return None


def classify(
    pins: dict[str, str], pip_audit: list[dict[str, Any]], projects: dict[str, dict[str, Any] | None]
) -> Audit:
    audit = Audit()
    by_name = {canonicalize_name(d["name"]): d for d in pip_audit}
    for name, version in sorted(pins.items(), key=lambda kv: kv[0].lower()):
        pin = f"{name} {version}"
        answer = by_name.get(canonicalize_name(name))
        if answer is not None and "skip_reason" not in answer:
            audit.audited_by_pip_audit.append(pin)
            if answer.get("vulns"):
                audit.vulnerable[pin] = [v["id"] for v in answer["vulns"]]
            continue
        project = projects.get(name)
        if project is None:
            audit.not_audited[pin] = "neither pip-audit nor PyPI's project endpoint answered"
            continue
        latest = project["info"]["version"]
        if Version(latest) != Version(version):
            audit.not_audited[pin] = f"the latest release is {latest}; PyPI gives vulnerability data only for it here"
            continue
        audit.audited_as_latest.append(pin)
        if project.get("vulnerabilities"):
            audit.vulnerable[pin] = [v["id"] for v in project["vulnerabilities"]]
    return audit


def report(audit: Audit, total: int) -> str:
    lines = [
        f"Locked packages: {total}. Audited: {audit.audited} ({len(audit.audited_by_pip_audit)} by pip-audit, "
        f"{len(audit.audited_as_latest)} as their project's latest release); not audited: {len(audit.not_audited)}.",
    ]
    lines += [f"  not audited: {pin}: {why}" for pin, why in audit.not_audited.items()]
    if audit.vulnerable:
        lines += [f"  VULNERABLE: {pin}: {', '.join(ids)}" for pin, ids in audit.vulnerable.items()]
    elif audit.audited:
        lines.append("Known vulnerabilities in the audited packages: none.")
    if audit.audited == 0:
        lines.append("Nothing could be audited: neither pip-audit nor PyPI's project endpoint answered.")
    return "\n".join(lines)


def main() -> int:
    constraints = ROOT / "constraints.txt"
    pins = locked_pins(constraints)
    pip_audit = run_pip_audit(constraints)
    skipped = {canonicalize_name(d["name"]) for d in pip_audit if "skip_reason" in d}
    to_ask = [name for name in pins if canonicalize_name(name) in skipped]
    with ThreadPoolExecutor(8) as pool:
        projects = dict(zip(to_ask, pool.map(latest_release, to_ask), strict=True))
    audit = classify(pins, pip_audit, projects)
    print(report(audit, len(pins)))
    return 1 if audit.failed else 0


if __name__ == "__main__":
    sys.exit(main())
