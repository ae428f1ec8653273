"""`domicile serve`: the deployed HTTP function's handler behind a real HTTP server, on this machine.

Each request becomes the event a Lambda function URL hands the function (payload format 2.0, as
the Lambda developer guide's "Invoking Lambda function URLs" describes it), the handler the
template deploys (`functions.inference.http_api.handler`) answers it, and its result becomes the
HTTP response as the function URL would make it. So a client that works here works against the
deployed URL, signing apart.

The server is uvicorn (an ASGI server); each worker is its own process that imports the handler,
with its own ORT sessions, and answers one request at a time, as a Lambda execution environment does.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from domicile.config.project import registry_dir
from domicile.config.topology import Topology

HANDLER = "functions.inference.http_api.handler"  # the template's handler for the HTTP function
APP = "domicile_local.serve:app"

# Function URLs pass these bodies as text; any other content type arrives base64-encoded
# ("If the content type of the request is binary, the body is base64-encoded").
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded")  # fmt: skip

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def handler_environment(topology: Topology, models: Path | None = None) -> dict[str, str]:
    """What the template gives the HTTP function, for the topology's first home region."""
    region = topology.home_regions()[0]
    jurisdiction = topology.jurisdiction_of_region(region)
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "JURISDICTION": jurisdiction,
        "ALLOWED_REGIONS": ",".join(topology.regions_of(jurisdiction)),
        "MODEL_DIR": str(registry_dir(models)),
        # As the regional stack sets it: the cloud model of the region's first fleet.
        "DEFAULT_MODEL": next(iter(topology.cloud_models_in(region).values())),
        "POWERTOOLS_SERVICE_NAME": "domicile-inference",
        "POWERTOOLS_METRICS_NAMESPACE": "Domicile",
        "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines go to CloudWatch in Lambda; here they are noise
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def _is_text(content_type: str | None, body: bytes) -> bool:
    if not body:
        return True
    if content_type is None or not content_type.lower().startswith(_TEXT_TYPES):
        return False
    try:
        body.decode()
    except UnicodeDecodeError:
        return False  # a textual type whose bytes are not text: base64, or it could not be carried
    return True


def function_url_event(scope: Scope, body: bytes) -> dict[str, Any]:
    """The payload 2.0 event Lambda builds from an HTTP request to a function URL."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value  # repeated: comma-joined
    query = scope.get("query_string", b"").decode("latin-1")
    params: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        params[key] = f"{params[key]},{value}" if key in params else value
    text = _is_text(headers.get("content-type"), body)
    client = scope.get("client") or ("127.0.0.1", 0)
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0],
        "rawQueryString": query,
        "cookies": cookies,
        "headers": headers,
        "queryStringParameters": params or None,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": scope["method"],
                "path": scope["path"],
                "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
                "sourceIp": client[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body.decode() if text else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": not text,
    }


def http_response(result: Mapping[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of the HTTP response a function URL makes of the function's result."""
    if "statusCode" not in result:  # "Lambda infers the response format": the result is the JSON body
        import json

        return 200, [(b"content-type", b"application/json")], json.dumps(result).encode()
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    headers = [
        (k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (result.get("headers") or {}).items()
    ]
    headers += [(b"set-cookie", c.encode("latin-1")) for c in result.get("cookies") or ()]
    return int(result["statusCode"]), headers, body


class _Function:
    """The handler, imported in this worker process: its init (settings, sessions) runs here, once."""

    def __init__(self) -> None:
        from domicile_local.invoke import LambdaContext, load_handler

        self.handler = load_handler(HANDLER)
        self.context = LambdaContext
        self.region = os.environ.get("AWS_REGION", "eu-central-1")

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        context = self.context(function_name="domicile-serve", region=self.region,
                               aws_request_id=event["requestContext"]["requestId"])  # fmt: skip
        result: Mapping[str, Any] = self.handler(event, context)
        return result


_function: _Function | None = None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI application uvicorn serves: a function URL in front of the handler."""
    global _function
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _function = _Function()  # the cold start, before the worker takes requests
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http" or _function is None:
        return
    event = function_url_event(scope, await _read_body(receive))
    # Synchronous on purpose: one request at a time per worker, as one Lambda environment answers.
    status, headers, body = http_response(_function(event))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wait_ready(url: str, proc: subprocess.Popen[Any], deadline_s: float, path: str = "/v2/health/ready") -> None:
    """Until `GET url+path` answers 200 (a worker has loaded its sessions), within `deadline_s`.

    Raises RuntimeError if the server process exits first, TimeoutError past the deadline.
    """
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=5) as answer:
                if answer.status == HTTPStatus.OK:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or no worker ready
        time.sleep(0.2)  # polling the readiness route, under the deadline
    raise TimeoutError(f"{url}{path} did not answer 200 within {deadline_s:.0f} s")


def serve(topology: Topology, host: str, port: int, workers: int, models: Path | None = None) -> None:
    """Serve until Ctrl-C. The workers inherit the function's environment, set here first."""
    import uvicorn

    os.environ.update(handler_environment(topology, models))
    uvicorn.run(APP, host=host, port=port, workers=workers, lifespan="on", log_level="info",
                access_log=True, timeout_graceful_shutdown=5)  # fmt: skip
