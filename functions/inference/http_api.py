"""Open Inference Protocol v2 over a Lambda Function URL or an API Gateway HTTP API (payload 2.0).

POST /v2/models/{name}/infer, GET /v2/models/{name}, GET /v2/models/{name}/ready,
GET /v2/health/ready, GET /v2/health/live, GET /v2.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from domicile import __version__
from domicile.config.settings import HttpSettings, load_settings
from domicile.errors import InputError, ModelNotFoundError, PayloadTooLargeError
from domicile.wire.oip import decode_infer_request, encode_infer_response, model_metadata
from functions.inference.shared import logger, metrics, set_dimensions, tracer, warm_runtime

settings = load_settings(HttpSettings)
set_dimensions(settings)
runtime = warm_runtime(settings)
app = APIGatewayHttpResolver()


def _error(status: int, message: str, **details: str) -> Response[str]:
    import json

    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": message, **details}),
    )


@app.exception_handler(PayloadTooLargeError)
def _too_large(err: PayloadTooLargeError) -> Response[str]:
    metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
    return _error(413, str(err), field=err.field, reason=err.reason)


@app.exception_handler(InputError)
def _bad_input(err: InputError) -> Response[str]:
    metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
    logger.info("rejected request", extra={"field": err.field, "reason": err.reason})
    return _error(400, str(err), field=err.field, reason=err.reason)


@app.exception_handler(ModelNotFoundError)
def _unknown_model(err: ModelNotFoundError) -> Response[str]:
    return _error(404, str(err), field="model_name", reason="unknown model")


@app.not_found
def _no_route(_: Exception) -> Response[str]:
    return _error(404, f"no route for {app.current_event.http_method} {app.current_event.path}")


def _request_body() -> str:
    event = app.current_event
    raw = event.body or ""
    size = len(raw) * 3 // 4 if event.is_base64_encoded else len(raw.encode())
    if size > settings.max_body_bytes:
        raise PayloadTooLargeError("body", f"{size} bytes is over the limit of {settings.max_body_bytes}")
    if not raw:
        raise InputError("body", "is empty; send an OIP v2 infer request")
    if event.is_base64_encoded:
        try:
            return base64.b64decode(raw, validate=True).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError("body", "is not valid base64-encoded UTF-8") from exc
    return raw


@app.get("/v2")
def server_metadata() -> dict[str, Any]:
    return {"name": "domicile", "version": __version__, "extensions": []}


@app.get("/v2/health/ready")
@app.get("/v2/health/live")
def health() -> dict[str, bool]:
    return {"ready": True, "live": True}


@app.get("/v2/models/<name>")
def metadata(name: str) -> dict[str, Any]:
    return model_metadata(runtime.entry(name))


@app.get("/v2/models/<name>/ready")
def model_ready(name: str) -> dict[str, Any]:
    runtime.entry(name)
    return {"name": name, "ready": True}


@app.post("/v2/models/<name>/infer")
def infer(name: str) -> dict[str, Any]:
    entry = runtime.entry(name)
    request, matrix = decode_infer_request(_request_body(), entry, settings.max_batch_rows)
    started = time.perf_counter()
    predictions = runtime.run(entry, matrix)
    metrics.add_metric(
        name="InferenceLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1e3
    )
    metrics.add_metric(name="Inferences", unit=MetricUnit.Count, value=len(matrix))
    return encode_infer_response(request, predictions)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
