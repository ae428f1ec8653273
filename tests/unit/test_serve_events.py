"""`domicile serve` builds the event a Lambda function URL builds, and the response it makes.

The contract, from the Lambda developer guide ("Invoking Lambda function URLs", request and
response payloads): payload format 2.0; header names in lower case, repeated headers joined by
commas; cookies apart in `cookies`; `rawQueryString` as sent; a binary body base64-encoded with
`isBase64Encoded` true; the result's `body` decoded when `isBase64Encoded`, its `cookies` sent as
`set-cookie`, and a result without `statusCode` taken as a 200 JSON body.
"""

import base64
import json

import pytest

from domicile.config.topology import load_topology
from domicile_local.serve import function_url_event, handler_environment, http_response
from functions.inference import http_api


def scope(method="POST", path="/v2/models/digits-cloud/infer", headers=(), query=b""):
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": [(k.encode(), v.encode()) for k, v in headers], "http_version": "1.1",
            "client": ("127.0.0.5", 5555)}  # fmt: skip


def test_the_event_has_the_function_url_shape():
    headers = [("Content-Type", "application/json"), ("X-Many", "a"), ("X-Many", "b"), ("Cookie", "k1=v1; k2=v2"),
               ("User-Agent", "tritonclient")]  # fmt: skip
    event = function_url_event(scope(headers=headers, query=b"a=1&a=2&b=3"), b'{"inputs": []}')
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/v2/models/digits-cloud/infer" and event["rawQueryString"] == "a=1&a=2&b=3"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "3"}
    assert event["headers"]["content-type"] == "application/json" and event["headers"]["x-many"] == "a,b"
    assert "cookie" not in event["headers"] and event["cookies"] == ["k1=v1", "k2=v2"]
    http = event["requestContext"]["http"]
    assert http == {"method": "POST", "path": "/v2/models/digits-cloud/infer", "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.5", "userAgent": "tritonclient"}  # fmt: skip
    assert event["body"] == '{"inputs": []}' and event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "body", "encoded"),
    [
        ("application/json", b"{}", False),
        ("text/plain; charset=utf-8", b"hello", False),
        ("application/octet-stream", b"{}\x00\x01", True),
        (None, b"\x00\xff", True),
        ("application/json", b"{}\xff\xfe", True),  # not text whatever it says: it cannot travel as a string
    ],
)
def test_a_binary_body_is_base64_encoded(content_type, body, encoded):
    headers = [("content-type", content_type)] if content_type else []
    event = function_url_event(scope(headers=headers), body)
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body


def test_the_result_becomes_the_response():
    status, headers, body = http_response(
        {
            "statusCode": 201,
            "headers": {"X-A": "1"},
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
            "cookies": ["c=1; Max-Age=5"],
        }
    )
    assert status == 201 and body == b"\x00\x01"
    assert (b"x-a", b"1") in headers and (b"set-cookie", b"c=1; Max-Age=5") in headers
    assert http_response({"answer": 42}) == (200, [(b"content-type", b"application/json")], b'{"answer": 42}')


def test_the_handler_answers_the_event_serve_builds(lambda_context):
    """What serve hands the deployed handler is what the handler takes: no adapter in between."""
    body = json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]})
    event = function_url_event(scope(headers=[("content-type", "application/json")]), body.encode())
    status, _, answer = http_response(http_api.handler(event, lambda_context))
    assert status == 200 and json.loads(answer)["model_name"] == "digits-cloud"


def test_the_function_environment_comes_from_the_topology():
    topology = load_topology()
    env = handler_environment(topology)
    region = topology.home_regions()[0]
    assert env["AWS_REGION"] == region and env["JURISDICTION"] == topology.jurisdiction_of_region(region)
    assert env["DEFAULT_MODEL"] == "digits-cloud" and env["MODEL_DIR"].endswith("models")
    assert region in env["ALLOWED_REGIONS"].split(",")


def test_serve_refuses_fewer_than_one_worker():
    from tests.conftest import run_cli

    done = run_cli("serve", "--workers", "0", timeout=60)
    assert done.returncode == 2 and "argument --workers: needs at least 1, got 0" in done.stderr
