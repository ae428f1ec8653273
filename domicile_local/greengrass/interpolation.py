"""Recipe variables, substituted as the nucleus substitutes them (nucleus `KernelConfigResolver`).

- Same-component placeholders `{namespace:key}` and cross-component ones `{component:namespace:key}`
  (the latter only for a direct dependency; otherwise the text stays as it is, and the nucleus logs
  an error).
- System parameters: `artifacts:path`, `artifacts:decompressedPath`, `work:path`, `kernel:rootPath`,
  `iot:thingName`.
- `configuration:<JSON pointer>`: a value is its text, an object or list its JSON; in lifecycles
  always, never inside a component's configuration.
- A component's configuration gets the system parameters only when the nucleus's
  `interpolateComponentConfiguration` is on (developer guide, "Greengrass nucleus", v2.6.0+).
- An unknown placeholder is left in place, so a component reads the braces literally.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

SAME_COMPONENT = re.compile(r"\{([.\w-]+):([^:}]*)}")
CROSS_COMPONENT = re.compile(r"\{([.\w-]+):([.\w-]+):([^:}]*)}")

# (component, namespace, key) -> value, or None when the nucleus has no such parameter
SystemParameter = Callable[[str, str, str], str | None]


def pointer(document: Any, path: str) -> Any:
    """RFC 6901 JSON pointer lookup (`""` is the whole document); KeyError when missing."""
    if path == "":
        return document
    node = document
    for raw in path.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Interpolator:
    def __init__(self, system: SystemParameter, configurations: dict[str, Any]) -> None:
        self.system = system
        self.configurations = configurations  # component -> its resolved configuration

    def interpolate(self, value: Any, component: str, dependencies: set[str], *, with_configuration: bool) -> Any:
        if isinstance(value, str):
            return self._replace(value, component, dependencies, with_configuration)
        if isinstance(value, dict):
            return {k: self.interpolate(v, component, dependencies, with_configuration=with_configuration)
                    for k, v in value.items()}  # fmt: skip
        if isinstance(value, list):
            return [self.interpolate(v, component, dependencies, with_configuration=with_configuration) for v in value]
        return value

    def _lookup(self, component: str, namespace: str, key: str, with_configuration: bool) -> str | None:
        if namespace == "configuration":
            if not with_configuration:
                return None
            try:
                return _text(pointer(self.configurations.get(component, {}), key))
            except (KeyError, IndexError, ValueError, TypeError):
                return None
        return self.system(component, namespace, key)

    def _replace(self, text: str, component: str, dependencies: set[str], with_configuration: bool) -> str:
        for match in SAME_COMPONENT.finditer(text):
            value = self._lookup(component, match.group(1), match.group(2), with_configuration)
            if value is not None:
                text = text.replace(match.group(0), value)
        for match in CROSS_COMPONENT.finditer(text):
            target, namespace, key = match.groups()
            if target not in dependencies or target not in self.configurations:
                continue  # only a direct dependency, already resolved, may be named
            value = self._lookup(target, namespace, key, with_configuration)
            if value is not None:
                text = text.replace(match.group(0), value)
        return text


def merge(default: Any, update: Any) -> Any:
    """A configuration merge update: objects merge key by key, anything else replaces
    (developer guide, "Update component configurations", merge updates)."""
    if isinstance(default, dict) and isinstance(update, dict):
        out = dict(default)
        for key, value in update.items():
            out[key] = merge(default.get(key), value) if key in default else value
        return out
    return update
