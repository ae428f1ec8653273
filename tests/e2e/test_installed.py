"""The package as a user installs it: the wheel in a fresh venv, run outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = (
    "pyproject.toml",
    "README.md",
    "domicile.toml",
    "models",
    "domicile",
    "domicile_local",
    "edge_components",
    "functions",
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the built wheel; its dependencies come from this venv, never the checkout."""
    where = tmp_path_factory.mktemp("installed")
    source = where / "source"  # a copy of what the distribution is built from: the build writes nothing here
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(where / "dist"), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (where / "dist").glob("domicile-*.whl")
    venv.create(where / "venv", with_pip=True)
    python = where / "venv" / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The dependencies (numpy, onnxruntime, pydantic, ...) from this venv's site-packages: a path line, so
    # the editable install's finder there is never run and `domicile` can only come from the wheel.
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())  # fmt: skip
    (site / "dev-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    assert zipfile.ZipFile(wheel).getinfo("domicile_defaults/models/manifest.json")
    return where


def _run(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DOMICILE_"))}
    outside = where / "elsewhere"
    outside.mkdir(exist_ok=True)
    return subprocess.run([str(where / "venv" / "bin" / "domicile"), *args], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_the_core_is_imported_from_the_wheel_not_the_checkout(installed):
    python = installed / "venv" / "bin" / "python"
    out = subprocess.check_output([str(python), "-c", "import domicile, domicile_local; print(domicile.__file__); "
                                   "print(domicile_local.__file__)"], cwd=installed, text=True)  # fmt: skip
    for line in out.splitlines():
        assert str(installed / "venv") in line and str(ROOT) not in line


def test_topology_check_reads_the_embedded_topology(installed):
    done = _run(installed, "topology", "check")
    assert done.returncode == 0, done.stderr
    assert "domicile_defaults/domicile.toml: valid" in done.stdout
    assert "eu-central-1 [eu]:" in done.stdout


def test_models_list_reads_the_embedded_registry(installed):
    done = _run(installed, "models", "list")
    assert done.returncode == 0, done.stderr
    assert "digits-edge" in done.stdout and "digits-cloud" in done.stdout and "live" in done.stdout


def test_a_project_folder_is_preferred_to_the_embedded_defaults(installed):
    project = installed / "elsewhere"
    project.mkdir(exist_ok=True)
    (project / "domicile.toml").write_text('[jurisdictions.eu]\nregions = ["eu-moon-1"]\n[models]\n[fleets]\n')
    try:
        done = _run(installed, "topology", "check")
    finally:
        (project / "domicile.toml").unlink()
    assert done.returncode == 2
    assert "jurisdictions.eu.regions: unknown AWS region 'eu-moon-1'" in done.stderr


def test_serve_runs_the_wheels_handler_outside_a_project(installed):
    """`domicile serve` needs the handlers: the wheel ships `functions`, and serves the embedded registry."""
    import json
    import urllib.request

    from tests.served import Served

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DOMICILE_"))}
    outside = installed / "elsewhere"
    outside.mkdir(exist_ok=True)
    server = Served(workers=1, program=[str(installed / "venv" / "bin" / "domicile")], cwd=outside, env=env)
    server.start()
    try:
        with urllib.request.urlopen(f"{server.url}/v2/models/digits-cloud", timeout=30) as response:
            answer = json.loads(response.read())
        assert answer["name"] == "digits-cloud" and answer["versions"] == ["1.0.0"]
    finally:
        assert server.stop() == 0, server.output
