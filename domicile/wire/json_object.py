"""A JSON object from a request's text, or an InputError on the field that carried it."""

from __future__ import annotations

import json
from typing import Any

from domicile.errors import InputError


def json_object(raw: str | bytes, field: str, shape: str) -> dict[str, Any]:
    """`raw` parsed; refused when it is not JSON, or when it is JSON but not an object (`shape` says what is)."""
    try:
        parsed = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(field, f"is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InputError(field, shape)
    return parsed
