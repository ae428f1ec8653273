"""Local (Docker-free) bundling of Python Lambda assets.

pip installs manylinux wheels for the target Python version and CPU into a cache keyed by the
hash of the requirements, so only the first synth pays for the download; each bundle copies the
cached dependencies plus our code (and, for the cloud function, the models).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from domicile.config.project import MANIFEST_FILE, registry_dir
from domicile.models.registry import load_manifest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = PROJECT_ROOT / ".cache" / "lambda-deps"
BUNDLER_VERSION = "2"  # bump to invalidate every cached bundle

# The Lambda runtime provides these, and they are big: leave them out of the asset.
PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer")
# Parts of packages a handler never imports.
PRUNE = (
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "onnxruntime/tools",
    "onnxruntime/datasets",
    "numpy/tests",
    "numpy/*/tests",
    "numpy/_core/include",
    "numpy/f2py",
    "bin",
)


@dataclass(frozen=True)
class PackageSpec:
    """What goes into one kind of Lambda asset."""

    requirements: Path
    code_dirs: tuple[str, ...]
    include_models: bool
    drop_runtime_provided: bool = True  # Greengrass devices have no boto3 of Lambda's: keep it there


CLOUD_PACKAGE = PackageSpec(PROJECT_ROOT / "functions" / "requirements.txt", ("domicile", "functions"), True)
EDGE_PACKAGE = PackageSpec(
    PROJECT_ROOT / "edge_components" / "requirements.txt", ("domicile", "edge_components"), False, False
)


def platform_tags(architecture: lambda_.Architecture) -> list[str]:
    cpu = "aarch64" if architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"
    # Lambda's Amazon Linux 2023 runtimes have glibc 2.34; so do current device distributions.
    return [f"manylinux_2_{minor}_{cpu}" for minor in (34, 28, 27, 17)] + [f"manylinux2014_{cpu}"]


def python_version(runtime: lambda_.Runtime) -> str:
    return runtime.name.removeprefix("python")


def _hash_files(digest: Any, root: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
                digest.update(path.read_bytes())


def cloud_model_files(model_dir: Path | None = None) -> list[Path]:
    """What the cloud functions may load: every version of the served models, the split models' tails
    (split heads go to devices), and the registry that vouches for them (the project's, see registry_dir)."""
    model_dir = registry_dir(model_dir)
    manifest = load_manifest(model_dir)
    names = {MANIFEST_FILE}
    for versions in manifest.versions.values():
        for entry in versions.values():
            if entry.split is None:
                names.add(entry.file)
            else:
                names.update(part.file for key, part in entry.split.parts.items() if key.endswith("/tail"))
    return [model_dir / name for name in sorted(names)]


def _deps_key(spec: PackageSpec, py: str, tags: list[str]) -> str:
    digest = hashlib.sha256(spec.requirements.read_bytes())
    digest.update(f"{py}|{','.join(tags)}|{spec.drop_runtime_provided}|{BUNDLER_VERSION}".encode())
    return digest.hexdigest()[:20]


def asset_hash(spec: PackageSpec, runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> str:
    """Changes when the requirements, our code or a model changes, and for nothing else."""
    digest = hashlib.sha256(_deps_key(spec, python_version(runtime), platform_tags(architecture)).encode())
    for code_dir in spec.code_dirs:
        _hash_files(digest, PROJECT_ROOT / code_dir, ("**/*.py",))
    if spec.include_models:
        for path in cloud_model_files():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def install_dependencies(spec: PackageSpec, py: str, tags: list[str]) -> Path:
    target = CACHE_DIR / _deps_key(spec, py, tags)
    if (target / ".complete").exists():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Parallel synths (pytest-xdist, several apps) share the cache: one installs, the others wait.
    with open(CACHE_DIR / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            _install(spec, target, py, tags)
    return target


def _install(spec: PackageSpec, target: Path, py: str, tags: list[str]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=CACHE_DIR))
    platform_args = [arg for tag in tags for arg in ("--platform", tag)]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-qq", "--disable-pip-version-check", "--no-compile",
         "--target", str(staging), "--implementation", "cp", "--python-version", py,
         "--only-binary=:all:", *platform_args, "-r", str(spec.requirements)],
        check=True,
    )  # fmt: skip
    if spec.drop_runtime_provided:
        for name in PROVIDED_BY_RUNTIME:
            for path in staging.glob(f"{name}*"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    for pattern in PRUNE:
        for path in staging.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)
    for cache in staging.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    (staging / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def build_asset(
    output_dir: Path, runtime: lambda_.Runtime, architecture: lambda_.Architecture, spec: PackageSpec = CLOUD_PACKAGE
) -> None:
    deps = install_dependencies(spec, python_version(runtime), platform_tags(architecture))
    shutil.copytree(deps, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt", "*.md")
    for code_dir in spec.code_dirs:
        shutil.copytree(PROJECT_ROOT / code_dir, output_dir / code_dir, dirs_exist_ok=True, ignore=ignore)
    if spec.include_models:
        models_out = output_dir / "models"
        models_out.mkdir(exist_ok=True)
        for path in cloud_model_files():
            shutil.copy2(path, models_out / path.name)


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    def __init__(self, runtime: lambda_.Runtime, architecture: lambda_.Architecture, spec: PackageSpec) -> None:
        self.runtime = runtime
        self.architecture = architecture
        self.spec = spec

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        build_asset(Path(output_dir), self.runtime, self.architecture, self.spec)
        return True


def python_function_code(
    runtime: lambda_.Runtime, architecture: lambda_.Architecture, spec: PackageSpec = CLOUD_PACKAGE
) -> lambda_.Code:
    """A Python Lambda asset, bundled locally (a Docker image is named but never used)."""
    return lambda_.Code.from_asset(
        str(spec.requirements.parent),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=asset_hash(spec, runtime, architecture),
        bundling=BundlingOptions(
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-{runtime.name}"),
            # jsii passes the options positionally; the generated stub spells them out as keywords.
            local=PipLocalBundling(runtime, architecture, spec),  # type: ignore[arg-type]
        ),
    )
