"""`sam local generate-event` output, saved as SAM printed it (events/sam/), is accepted by every handler.

Accepted means: a well-formed answer in the entry point's contract (an HTTP status, a partial-batch
response naming the bad record, a skipped object), never a crash.
"""

import json

from functions.aggregate import handler as aggregate
from functions.inference import http_api, s3_batch, sqs_batch
from tests.conftest import EVENTS

SAM = EVENTS / "sam"


def _sam(name):
    return json.loads((SAM / name).read_text())


def test_http_api_proxy_event_gets_a_json_404_for_a_path_outside_the_protocol(lambda_context):
    event = _sam("apigateway-http-api-proxy.json")
    answer = http_api.handler(event, lambda_context)
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"]) == {"error": "no route for POST /path/to/resource"}


def test_sqs_message_that_is_not_json_fails_alone_in_the_inference_queue(lambda_context, results_queue):
    event = _sam("sqs-receive-message.json")
    answer = sqs_batch.handler(event, lambda_context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_sqs_message_that_is_not_json_fails_alone_in_aggregation(lambda_context, tables, bucket):
    event = _sam("sqs-receive-message.json")
    answer = aggregate.handler(event, lambda_context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_s3_put_of_an_object_deleted_before_it_was_read_is_skipped_with_the_reason(lambda_context, bucket):
    event = _sam("s3-put.json")
    answer = s3_batch.handler(event, lambda_context)
    (outcome,) = answer["objects"]
    assert outcome == {"key": "incoming/batch-001.jsonl", "skipped": "the object no longer exists"}


def test_s3_put_outside_the_input_prefix_is_skipped_with_the_reason(lambda_context, bucket):
    event = _sam("s3-put.json")
    event["Records"][0]["s3"]["object"]["key"] = "test/key"  # SAM's default key
    answer = s3_batch.handler(event, lambda_context)
    assert answer["objects"] == [{"key": "test/key", "skipped": "outside incoming/"}]
