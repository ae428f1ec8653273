"""The HTTP layer of the OIP function: a Function URL / HTTP API (payload 2.0) event in, its result out.

Lambda hands a Function URL request to the function as a payload 2.0 event and turns the returned
dict back into the HTTP response (docs: "Invoking Lambda function URLs", request and response
payloads; API Gateway HTTP APIs use the same format). This module reads that event, finds the
route and shapes the result, for the OIP's fixed set of routes.

Why not Powertools' event_handler: importing it imports every resolver it has (AppSync, Bedrock
agents, VPC lattice, asyncio...), about 55 ms of each cold start, and resolving a request through it
cost more than the model run for one row (BENCHMARKS.md, "HTTP handler stages"). The routes here
are a table of a few patterns; the OIP error mapping stays in the entry point.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from domicile.errors import InputError, PayloadTooLargeError, UnsupportedEncodingError

JSON = "application/json"


# The request and a route are NamedTuples, cheaper to define and to build than frozen dataclasses:
# both count on the HTTP function's cold start and per request (BENCHMARKS.md).
class HttpRequest(NamedTuple):
    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case, as Function URLs deliver them
    body: bytes  # decoded from base64 when the event says so

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> HttpResponse:
        return cls(status, json.dumps(payload, separators=(",", ":")), {"Content-Type": JSON, **headers})

    def result(self) -> dict[str, Any]:
        """The function's return value: Lambda decodes a base64 body when `isBase64Encoded` is true."""
        if isinstance(self.body, str):
            return {"statusCode": self.status, "headers": self.headers, "body": self.body, "isBase64Encoded": False}
        return {
            "statusCode": self.status,
            "headers": self.headers,
            "body": base64.b64encode(self.body).decode("ascii"),
            "isBase64Encoded": True,
        }


def request_of(event: Mapping[str, Any], max_body_bytes: int) -> HttpRequest:
    """The request a payload 2.0 event carries; its body's limit is counted on the decoded bytes."""
    http = event.get("requestContext", {}).get("http", {})
    raw = event.get("body") or ""
    encoded = bool(event.get("isBase64Encoded"))
    # A lower bound of the decoded size first, so a body surely too large is refused before decoding.
    at_least = len(raw) * 3 // 4 - 2 if encoded else len(raw)
    if at_least > max_body_bytes:
        raise PayloadTooLargeError("body", f"{at_least} bytes or more is over the limit of {max_body_bytes}")
    if encoded:
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError("body", "is not valid base64 (isBase64Encoded is true)") from exc
    else:
        body = raw.encode()
    if len(body) > max_body_bytes:
        raise PayloadTooLargeError("body", f"{len(body)} bytes is over the limit of {max_body_bytes}")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    coding = headers.get("content-encoding", "identity").strip().lower()
    if coding != "identity":
        body = inflate(body, coding, max_body_bytes)
    return HttpRequest(str(http.get("method", "GET")).upper(), str(event.get("rawPath") or "/"), headers, body)


# Content codings a request may use, as tritonclient's `request_compression_algorithm` sends them
# (Triton's HTTP protocol docs, "Compression"): gzip, and deflate in its zlib wrapping (RFC 9110 8.4.1).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflate(body: bytes, coding: str, max_body_bytes: int) -> bytes:
    """`body` decompressed, never past the body limit (a small bomb stays small)."""
    if coding not in _WBITS:
        raise UnsupportedEncodingError("Content-Encoding", f"{coding!r} is not supported; send gzip, deflate or none")
    decompressor = zlib.decompressobj(_WBITS[coding])
    try:
        out = decompressor.decompress(body, max_body_bytes + 1)
    except zlib.error as exc:
        raise InputError("body", f"is not valid {coding} data ({exc})") from exc
    if len(out) > max_body_bytes:
        raise PayloadTooLargeError("body", f"inflates past the limit of {max_body_bytes} bytes")
    if not decompressor.eof:
        raise InputError("body", f"its {coding} data ends early")
    return out


Handler = Callable[..., HttpResponse]


class _Route(NamedTuple):
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    """Routes like `/v2/models/{name}/infer`: a `{param}` matches one path segment, passed by name."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
        pattern = re.compile(f"^{regex}/?$")

        def register(handler: Handler) -> Handler:
            self._routes.append(_Route(method.upper(), pattern, handler))
            return handler

        return register

    def resolve(self, request: HttpRequest) -> HttpResponse:
        allowed: list[str] = []
        for route in self._routes:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            if route.method == request.method:
                return route.handler(request, **match.groupdict())
            allowed.append(route.method)
        if allowed:
            return HttpResponse.json(
                405, {"error": f"{request.method} is not allowed on {request.path}"}, Allow=", ".join(allowed)
            )
        return HttpResponse.json(404, {"error": f"no route for {request.method} {request.path}"})
