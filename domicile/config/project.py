"""Where a project keeps its topology and its model registry.

As the CDK CLI finds `cdk.json`, domicile looks in the working directory: a `domicile.toml` and a
`models/` folder there are the user's project. Outside a project, the package's embedded defaults
(the digits topology and registry, shipped as the `domicile_defaults` package data) are used, so an
installed `domicile` works in any folder. `$DOMICILE_TOPOLOGY` and `$DOMICILE_MODELS` override both.
Nothing here looks at the source tree: Lambda handlers and edge components get their paths from
their settings.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from domicile.errors import ConfigError

TOPOLOGY_FILE = "domicile.toml"
MODELS_DIR = "models"
MANIFEST_FILE = "manifest.json"
TOPOLOGY_ENV = "DOMICILE_TOPOLOGY"
MODELS_ENV = "DOMICILE_MODELS"
EMBEDDED_PACKAGE = "domicile_defaults"


def embedded_root() -> Path:
    """The folder of the embedded defaults (in the wheel; the checkout itself in an editable install)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / TOPOLOGY_FILE).is_file():
            return Path(location)
    raise ConfigError(
        f"no {TOPOLOGY_FILE} here and the embedded defaults ({EMBEDDED_PACKAGE}) are not installed; "
        f"run in a project folder or set {TOPOLOGY_ENV} and {MODELS_ENV}"
    )


def _locate(explicit: Path | str | None, env: str, name: str, marker: str | None = None) -> Path:
    """The given path, else $env, else ./name (if it, or its `marker` file, exists), else the embedded one."""
    if explicit:
        return Path(explicit)
    if os.environ.get(env):
        return Path(os.environ[env])
    local = Path.cwd() / name
    return local if (local / marker if marker else local).is_file() else embedded_root() / name


def topology_file(explicit: Path | str | None = None) -> Path:
    """The topology to read: the given file, $DOMICILE_TOPOLOGY, ./domicile.toml, or the embedded one."""
    return _locate(explicit, TOPOLOGY_ENV, TOPOLOGY_FILE)


def registry_dir(explicit: Path | str | None = None) -> Path:
    """The model registry folder: the given one, $DOMICILE_MODELS, ./models, or the embedded one."""
    return _locate(explicit, MODELS_ENV, MODELS_DIR, MANIFEST_FILE)
