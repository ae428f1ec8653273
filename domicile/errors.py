"""Errors that carry what a caller needs to fix its input: the field and the reason."""

from __future__ import annotations


class DomicileError(Exception):
    """Base of every error this library raises on purpose."""


class InputError(DomicileError):
    """Bad input from a caller; maps to HTTP 400, a failed batch item or an error line."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class PayloadTooLargeError(InputError):
    """A request body over the configured limit (HTTP 413)."""


class UnsupportedEncodingError(InputError):
    """A request body in a content coding this server does not decode (HTTP 415, RFC 9110 8.4)."""


class ModelNotFoundError(DomicileError):
    """The caller named a model this deployment does not serve (HTTP 404)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"model {name!r} is not served here; known models: {', '.join(sorted(known))}")
        self.name = name


class ModelVersionNotFoundError(DomicileError):
    """The caller named a version of a served model that is not deployed (HTTP 404)."""

    def __init__(self, name: str, version: str, known: list[str]) -> None:
        super().__init__(f"model {name!r} has no version {version!r} here; known versions: {', '.join(known)}")
        self.name = name
        self.version = version


class ModelIntegrityError(DomicileError):
    """A model file whose sha256 differs from its manifest entry: it is never loaded."""


class ConfigError(DomicileError):
    """An invalid topology, manifest or environment; the message names the key."""
