"""The layout holds: each concern in its folder, and the core imports nothing above it.

The core (`domicile`) is what Lambda assets and edge components ship, so it may not import the
local run (`domicile_local`), the CDK app (`infra`), the handlers (`functions`) or the edge
components; and only its AWS adapters (`domicile.aws`) talk to AWS.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

ABOVE_THE_CORE = ("domicile_local", "infra", "functions", "edge_components", "tests", "benchmarks")
AWS_CLIENTS = ("boto3", "botocore", "mypy_boto3_s3", "mypy_boto3_sqs", "mypy_boto3_dynamodb", "aws_cdk")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _is(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


@pytest.mark.parametrize("path", _modules("domicile"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_nothing_above_it(path):
    above = sorted(name for name in _imports(path) if _is(name, ABOVE_THE_CORE))
    assert not above, f"{path.relative_to(ROOT)} imports {above}"


@pytest.mark.parametrize("path", _modules("domicile"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_aws_adapters_talk_to_aws(path):
    if path.parent.name == "aws":
        return
    names = _imports(path)
    aws = sorted(name for name in names if _is(name, AWS_CLIENTS) or _is(name, ("domicile.aws",)))
    assert not aws, f"{path.relative_to(ROOT)} imports {aws}: AWS calls belong in domicile/aws/"


@pytest.mark.parametrize("package", ["functions", "infra", "edge_components"])
def test_deployed_code_and_the_app_never_import_the_local_run(package):
    for path in _modules(package):
        local = sorted(name for name in _imports(path) if _is(name, ("domicile_local", "tests")))
        assert not local, f"{path.relative_to(ROOT)} imports {local}"


def test_the_distribution_lists_every_package_of_the_tree():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("domicile", "domicile_local", "edge_components", "functions")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert listed - {"domicile_defaults"} == found
