"""Byte-identical model builds need the same BLAS kernels on every machine, not only the same seed.

OpenBLAS picks its kernels for the CPU it finds (SkylakeX with AVX-512, Zen, Haswell, ...) and each
rounds sums differently, so one seed trains to other bytes on another CPU. Builds run on the
Haswell kernels, which every x86-64 CPU with AVX2 has, on one thread (the thread count changes the
summation order too). The kernels are chosen when OpenBLAS loads, so `pin_kernels` must run before
numpy is imported: the `domicile` command and the tests call it first thing.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

from domicile.errors import ConfigError

PINNED_CORETYPE = "Haswell"


def _x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def pin_kernels() -> None:
    """Ask OpenBLAS for the pinned kernels (x86-64 only; a choice already made in the environment wins)."""
    if _x86_64():
        os.environ.setdefault("OPENBLAS_CORETYPE", PINNED_CORETYPE)


@contextmanager
def reproducible_blas() -> Iterator[None]:
    """One BLAS thread on the pinned kernels; refuses to train on others rather than write other bytes."""
    from threadpoolctl import threadpool_info, threadpool_limits

    if _x86_64():
        for library in threadpool_info():
            found = library.get("architecture")
            if library.get("internal_api") == "openblas" and found != PINNED_CORETYPE:
                raise ConfigError(
                    f"OPENBLAS_CORETYPE: OpenBLAS runs its {found} kernels here, and a model trained on them is not "
                    f"byte-identical to the registry's; run the build with OPENBLAS_CORETYPE={PINNED_CORETYPE} "
                    "(the domicile command sets it when it starts)"
                )
    with threadpool_limits(1):
        yield
