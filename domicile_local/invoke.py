"""Invoke a Lambda handler in this process, the way the Lambda runtime would.

Used by the demo, the tests and (later) the local simulation: the handler is named by the same
string the template gives Lambda (`package.module.function`), and gets a real-shaped context.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LambdaContext:
    function_name: str = "domicile-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    region: str = "eu-central-1"
    timeout_s: float = 30.0
    log_group_name: str = "/aws/lambda/domicile-local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def use_asset(code_dir: Path) -> None:
    """Import handler code from a Lambda asset, as Lambda would run it.

    The project folder (the working directory) leaves the path, so `functions` comes from the asset;
    the asset goes after this interpreter's site-packages, whose binary wheels (onnxruntime) suit this
    machine where the asset's were built for Lambda's platform.
    """
    here = Path.cwd().resolve()
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != here]
    if str(code_dir) not in sys.path:
        sys.path.append(str(code_dir))


def load_handler(handler: str, code_dir: Path | None = None, fresh: bool = False) -> Callable[..., Any]:
    """Import `package.module.function` as Lambda does; `fresh` re-runs the module's init phase."""
    module_name, _, function_name = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {handler!r} must look like module.function")
    if code_dir is not None:
        use_asset(code_dir)
    if fresh:
        for name in [m for m in sys.modules if m == module_name or m.startswith("functions.")]:
            del sys.modules[name]  # each entry point parses its settings at import: a fresh init reads them again
    module = importlib.import_module(module_name)
    return getattr(module, function_name)  # type: ignore[no-any-return]


def invoke(handler: str, event: Any, context: LambdaContext | None = None) -> Any:
    return load_handler(handler)(event, context or LambdaContext())
