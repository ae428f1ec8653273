"""Open Inference Protocol v2 over a Lambda Function URL or an API Gateway HTTP API (payload 2.0).

POST /v2/models/{name}[/versions/{version}]/infer, GET /v2/models/{name}[/versions/{version}],
GET /v2/models/{name}[/versions/{version}]/ready, GET /v2/health/ready, GET /v2/health/live,
GET /v2, with Triton's binary tensor data extension (domicile/wire/oip.py).

Its init loads what a request needs and nothing more: no boto3, no X-Ray SDK (the function calls
no AWS service; Lambda's active tracing records its segments), no Powertools event_handler
(functions/inference/router.py says why). BENCHMARKS.md measures the cold init against bare
`import onnxruntime` plus the sessions.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from domicile import __version__
from domicile.config.settings import HttpSettings, load_settings
from domicile.errors import (
    InputError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    PayloadTooLargeError,
    UnsupportedEncodingError,
)
from domicile.models.serving import ServedModel
from domicile.wire.oip import EXTENSIONS, HEADER_LENGTH, decode_infer_request, encode_infer_response, model_metadata
from functions.inference.router import HttpRequest, HttpResponse, Router, request_of
from functions.inference.shared import logger, metrics, set_dimensions, warm_serving_runtime

settings = load_settings(HttpSettings)
set_dimensions(settings)
runtime = warm_serving_runtime(settings)
router = Router()
# Health and metadata calls add no metric; Powertools' docs suppress its warning about that this way.
warnings.filterwarnings("ignore", "No application metrics to publish")
OCTET_STREAM = "application/octet-stream"


def _error(status: int, message: str, **details: str) -> HttpResponse:
    return HttpResponse.json(status, {"error": message, **details})


@router.route("GET", "/v2")
def server_metadata(_: HttpRequest) -> HttpResponse:
    return HttpResponse.json(200, {"name": "domicile", "version": __version__, "extensions": list(EXTENSIONS)})


@router.route("GET", "/v2/health/ready")
@router.route("GET", "/v2/health/live")
def health(_: HttpRequest) -> HttpResponse:
    return HttpResponse.json(200, {"ready": True, "live": True})


def _entry(name: str, version: str | None) -> ServedModel:
    """The served model, or a 404 naming the known models or the versions deployed."""
    entry = runtime.entry(name)
    if version is not None and version != entry.version:
        raise ModelVersionNotFoundError(name, version, [entry.version])
    return entry


@router.route("GET", "/v2/models/{name}")
@router.route("GET", "/v2/models/{name}/versions/{version}")
def metadata(_: HttpRequest, name: str, version: str | None = None) -> HttpResponse:
    return HttpResponse.json(200, model_metadata(_entry(name, version)))


@router.route("GET", "/v2/models/{name}/ready")
@router.route("GET", "/v2/models/{name}/versions/{version}/ready")
def model_ready(_: HttpRequest, name: str, version: str | None = None) -> HttpResponse:
    entry = _entry(name, version)
    return HttpResponse.json(200, {"name": name, "version": entry.version, "ready": True})


@router.route("POST", "/v2/models/{name}/infer")
@router.route("POST", "/v2/models/{name}/versions/{version}/infer")
def infer(request: HttpRequest, name: str, version: str | None = None) -> HttpResponse:
    entry = _entry(name, version)
    if not request.body:
        raise InputError("body", "is empty; send an OIP v2 infer request")
    oip_request, matrix = decode_infer_request(
        request.body, entry, settings.max_batch_rows, request.header(HEADER_LENGTH)
    )
    started = time.perf_counter()
    predictions = runtime.run(entry, matrix)
    metrics.add_metric(
        name="InferenceLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1e3
    )
    metrics.add_metric(name="Inferences", unit=MetricUnit.Count, value=len(matrix))
    response = encode_infer_response(oip_request, predictions)
    if not response.binary:
        return HttpResponse.json(200, response.header)
    body = response.body()  # Triton's binary tensor data extension: the JSON's length in a header
    header_length = len(body) - len(response.binary)
    return HttpResponse(200, body, {"Content-Type": OCTET_STREAM, HEADER_LENGTH: str(header_length)})


# The caller's errors, most specific first: each answers with its status, naming the field.
_INPUT_STATUS = ((PayloadTooLargeError, 413), (UnsupportedEncodingError, 415), (InputError, 400))


def respond(event: dict[str, Any]) -> HttpResponse:
    """The event's response, with the errors a caller can fix turned into 4xx naming the field."""
    try:
        return router.resolve(request_of(event, settings.max_body_bytes))
    except InputError as err:
        metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
        logger.info("rejected request", extra={"field": err.field, "reason": err.reason})
        status = next(code for kind, code in _INPUT_STATUS if isinstance(err, kind))
        return _error(status, str(err), field=err.field, reason=err.reason)
    except ModelNotFoundError as err:
        return _error(404, str(err), field="model_name", reason="unknown model")
    except ModelVersionNotFoundError as err:
        return _error(404, str(err), field="model_version", reason="version not deployed")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The request id straight from the event: `correlation_id_path` runs a JMESPath query per request,
    # half the Logger's cost on this path (BENCHMARKS.md, HTTP handler stages).
    logger.set_correlation_id(event.get("requestContext", {}).get("requestId"))
    return respond(event).result()
