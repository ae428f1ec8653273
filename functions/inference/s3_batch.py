"""S3 ObjectCreated of a JSON-lines object under the input prefix: results land beside it.

`incoming/a/b.jsonl` -> `results/a/b.jsonl` in the same bucket (and so the same region), one output
line per input line; a bad line becomes an error line with its reason, never a silent skip.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from domicile.cloud.jsonlines import infer_jsonlines
from domicile.config.settings import S3BatchSettings, load_settings
from functions.inference.shared import logger, metrics, set_dimensions, warm_runtime
from functions.inference.tracing import tracer

settings = load_settings(S3BatchSettings)
set_dimensions(settings)
runtime = warm_runtime(settings)
s3 = boto3.client("s3", region_name=settings.aws_region)


def output_key(key: str) -> str:
    return settings.output_prefix + key.removeprefix(settings.input_prefix)


@tracer.capture_method
def process_object(bucket: str, key: str) -> dict[str, Any]:
    if not key.startswith(settings.input_prefix):
        # Never read our own output: that would loop. The notification filter should prevent it.
        logger.warning("ignored object outside the input prefix", extra={"bucket": bucket, "key": key})
        return {"key": key, "skipped": f"outside {settings.input_prefix}"}
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchKey"):
            raise  # throttling or access: Lambda's async retry and on-failure destination take it
        # Deleted between the event and this read: there is nothing to answer, and we say so.
        logger.warning("object no longer exists", extra={"bucket": bucket, "key": key})
        metrics.add_metric(name="ObjectsMissing", unit=MetricUnit.Count, value=1)
        return {"key": key, "skipped": "the object no longer exists"}
    if head["ContentLength"] > settings.max_object_bytes:
        raise ValueError(f"s3://{bucket}/{key} is {head['ContentLength']} bytes, over {settings.max_object_bytes}")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")  # bad bytes become bad lines, reported as such
    outcomes = infer_jsonlines(text, runtime, settings.default_model)
    errors = sum(o.error is not None for o in outcomes)
    out_key = output_key(key)
    s3.put_object(
        Bucket=bucket,
        Key=out_key,
        Body=("\n".join(o.to_json() for o in outcomes) + "\n").encode(),
        ContentType="application/x-ndjson",
        Metadata={"source-key": key[:1024], "lines": str(len(outcomes)), "errors": str(errors)},
    )
    metrics.add_metric(name="Inferences", unit=MetricUnit.Count, value=len(outcomes) - errors)
    metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=errors)
    logger.info("wrote results", extra={"key": out_key, "lines": len(outcomes), "errors": errors})
    return {"key": key, "output_key": out_key, "lines": len(outcomes), "errors": errors}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    # Keys arrive URL-encoded; unquote_plus gives the real key.
    return {"objects": [process_object(r.s3.bucket.name, unquote_plus(r.s3.get_object.key)) for r in event.records]}
