"""Byte-identical model builds need the same numeric kernels on every machine, not only the same seed.

OpenBLAS picks its kernels for the CPU it finds (SkylakeX with AVX-512, Zen, Haswell, ...) and each
rounds sums differently, so one seed trains to other bytes on another CPU. Builds run on the
Haswell kernels, which every x86-64 CPU with AVX2 has, on one thread (the thread count changes the
summation order too). numpy dispatches its own loops the same way: on an AVX-512 CPU, `exp` and
`log` (the MLP's softmax and loss) run AVX-512 code that rounds differently from the AVX2 code, so
its AVX-512 targets are switched off too (`NPY_DISABLE_CPU_FEATURES`, numpy's "CPU build options"
page). Both choices are made when the libraries load, so `pin_kernels` must run before numpy is
imported: the `domicile` command and the tests call it first thing.

The ONNX export needs a fixed hash seed too. skl2onnx gathers the (domain, version) pairs a graph
uses in a set and writes `opset_import` in that set's iteration order, which follows the string
hashes Python randomizes per process: with PYTHONHASHSEED=53 the digits cloud model lists
`ai.onnx.ml` before the default domain and its bytes differ (about one interpreter in sixty, the
rebuild failures seen on 2026-12-02). Builds run with PYTHONHASHSEED=0 (`BUILD_HASH_SEED`), which
gives the registry's bytes; the `domicile` command restarts itself with it for the build commands.
"""

from __future__ import annotations

import importlib
import os
import platform
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from domicile.errors import ConfigError

PINNED_CORETYPE = "Haswell"
BUILD_HASH_SEED = "0"  # the PYTHONHASHSEED the registry's models were exported under
# numpy's dispatch targets above x86-64-v3 (AVX2); the names are numpy 2.x's, see `np.show_runtime()`.
NUMPY_TARGETS_OFF = ("X86_V4", "AVX512_ICL", "AVX512_SPR")


def _x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def pin_kernels() -> None:
    """Ask OpenBLAS and numpy for the pinned kernels (x86-64 only; a choice already made in the environment wins)."""
    if _x86_64():
        os.environ.setdefault("OPENBLAS_CORETYPE", PINNED_CORETYPE)
        os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", " ".join(NUMPY_TARGETS_OFF))


def numpy_features() -> Mapping[str, bool]:
    """The CPU features numpy dispatches to in this process (a disabled one reads False)."""
    module = importlib.import_module("numpy._core._multiarray_umath")
    features: Mapping[str, bool] = module.__cpu_features__
    return features


def cpu_report() -> str:
    """What decides the bytes of a build here: the CPU, numpy's enabled targets, each BLAS's kernels and threads."""
    from threadpoolctl import threadpool_info

    info = _cpuinfo()
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.machine())
    avx512 = any(line.startswith("flags") and " avx512f" in line for line in info)
    numpy_on = " ".join(name for name, on in numpy_features().items() if on)
    blas = "; ".join(f"{lib['filepath']}: {lib.get('architecture')} x{lib['num_threads']}" for lib in threadpool_info())
    return f"CPU {cpu} (AVX-512: {avx512}); numpy {numpy_on}; {blas}"


def _cpuinfo() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return info.readlines()
    except OSError:
        return []


def check_numpy_kernels(features: Mapping[str, bool]) -> None:
    on = [name for name in NUMPY_TARGETS_OFF if features.get(name)]
    pinned = " ".join(NUMPY_TARGETS_OFF)
    if on:
        raise ConfigError(
            f"NPY_DISABLE_CPU_FEATURES: numpy runs its {' '.join(on)} loops here, and a model trained on them is not "
            f"byte-identical to the registry's; run the build with NPY_DISABLE_CPU_FEATURES='{pinned}' "
            "(the domicile command sets it when it starts)"
        )


def check_blas_kernels(libraries: list[dict[str, object]]) -> None:
    for library in libraries:
        found = library.get("architecture")
        if library.get("internal_api") == "openblas" and found != PINNED_CORETYPE:
            raise ConfigError(
                f"OPENBLAS_CORETYPE: OpenBLAS runs its {found} kernels here, and a model trained on them is not "
                f"byte-identical to the registry's; run the build with OPENBLAS_CORETYPE={PINNED_CORETYPE} "
                "(the domicile command sets it when it starts)"
            )


def hash_seed_pinned(environ: Mapping[str, str]) -> bool:
    return environ.get("PYTHONHASHSEED") == BUILD_HASH_SEED


@contextmanager
def reproducible_blas() -> Iterator[None]:
    """One BLAS thread on the pinned kernels; refuses to train on others rather than write other bytes."""
    importlib.import_module("scipy.linalg")  # its own OpenBLAS loads now, so the limit and the check reach it
    from threadpoolctl import threadpool_info, threadpool_limits

    if _x86_64():
        check_blas_kernels(threadpool_info())
        check_numpy_kernels(numpy_features())
    with threadpool_limits(1):
        yield
