"""The HTTP layer of the OIP function: Function URL / HTTP API payload 2.0 events in and out.

Event and result shapes follow the Lambda docs, "Invoking Lambda function URLs" (request and
response payloads): the body arrives base64-encoded when `isBase64Encoded` is true, and a result
with `isBase64Encoded` true has its body decoded by Lambda before it reaches the client.
"""

import base64
import gzip
import zlib

import pytest

from domicile.errors import InputError, PayloadTooLargeError, UnsupportedEncodingError
from functions.inference.router import HttpRequest, HttpResponse, Router, request_of


def event(method="GET", path="/v2", body=None, encoded=False, headers=None):
    e = {
        "version": "2.0",
        "rawPath": path,
        "headers": headers or {},
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "r-1"},
        "isBase64Encoded": encoded,
    }
    if body is not None:
        e["body"] = body
    return e


def router_with_routes():
    router = Router()

    @router.route("GET", "/v2/models/{name}")
    def meta(request, name):
        return HttpResponse.json(200, {"model": name})

    @router.route("POST", "/v2/models/{name}/versions/{version}/infer")
    def infer(request, name, version):
        return HttpResponse.json(200, {"model": name, "version": version, "bytes": len(request.body)})

    return router


def test_a_template_binds_each_segment_by_name():
    router = router_with_routes()
    answer = router.resolve(request_of(event("POST", "/v2/models/m-1/versions/2/infer", "{}"), 100))
    assert answer.status == 200 and '"version":"2"' in answer.body and '"model":"m-1"' in answer.body
    assert router.resolve(request_of(event("GET", "/v2/models/m-1/"), 100)).status == 200  # a trailing slash


def test_a_segment_never_spans_a_slash():
    assert router_with_routes().resolve(request_of(event("GET", "/v2/models/a/b"), 100)).status == 404


def test_unknown_path_is_404_and_known_path_with_another_method_is_405_with_allow():
    router = router_with_routes()
    missing = router.resolve(request_of(event("GET", "/v3/x"), 100))
    assert missing.status == 404 and "no route for GET /v3/x" in missing.body
    wrong = router.resolve(request_of(event("DELETE", "/v2/models/m"), 100))
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET"


def test_base64_body_is_decoded_and_headers_are_lower_case():
    raw = bytes(range(256))
    request = request_of(event("POST", body=base64.b64encode(raw).decode(), encoded=True,
                               headers={"Inference-Header-Content-Length": "12"}), 1000)  # fmt: skip
    assert request.body == raw
    assert request.header("inference-header-content-length") == "12"
    assert request.header("Inference-Header-Content-Length") == "12"


def test_bad_base64_names_the_body():
    with pytest.raises(InputError, match=r"^body: is not valid base64"):
        request_of(event("POST", body="not base64!", encoded=True), 1000)


@pytest.mark.parametrize("encoded", [False, True])
def test_the_body_limit_counts_decoded_bytes(encoded):
    at_limit = b"x" * 300
    body = base64.b64encode(at_limit).decode() if encoded else at_limit.decode()
    assert request_of(event("POST", body=body, encoded=encoded), 300).body == at_limit  # 400 base64 chars pass
    over = base64.b64encode(at_limit + b"y").decode() if encoded else (at_limit + b"y").decode()
    with pytest.raises(PayloadTooLargeError, match="over the limit of 300"):
        request_of(event("POST", body=over, encoded=encoded), 300)


def test_multibyte_text_is_counted_in_bytes():
    with pytest.raises(PayloadTooLargeError, match="12 bytes is over the limit of 10"):
        request_of(event("POST", body="éééééé"), 10)


def test_text_and_binary_results():
    text = HttpResponse.json(201, {"a": 1}).result()
    assert text == {"statusCode": 201, "headers": {"Content-Type": "application/json"}, "body": '{"a":1}',
                    "isBase64Encoded": False}  # fmt: skip
    binary = HttpResponse(200, b"\x00\xff", {"Content-Type": "application/octet-stream"}).result()
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == b"\x00\xff"


def test_a_request_without_a_method_or_path_defaults_safely():
    request = request_of({}, 10)
    assert request == HttpRequest("GET", "/", {}, b"")


@pytest.mark.parametrize(("coding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_a_compressed_body_is_inflated(coding, compress):
    raw = b'{"inputs": []}' * 10
    packed = base64.b64encode(compress(raw)).decode()
    request = request_of(event("POST", body=packed, encoded=True, headers={"Content-Encoding": coding.upper()}), 1000)
    assert request.body == raw


def test_a_compressed_body_is_held_to_the_limit_once_inflated():
    bomb = base64.b64encode(gzip.compress(b"0" * 1_000_000)).decode()  # about 1 KB on the wire
    with pytest.raises(PayloadTooLargeError, match="inflates past the limit of 4096 bytes"):
        request_of(event("POST", body=bomb, encoded=True, headers={"content-encoding": "gzip"}), 4096)


@pytest.mark.parametrize(
    ("coding", "body", "error", "message"),
    [
        ("br", b"x", UnsupportedEncodingError, "^Content-Encoding: 'br' is not supported"),
        ("gzip", b"not gzip", InputError, "^body: is not valid gzip data"),
        ("gzip", gzip.compress(b"x" * 100, mtime=0)[:-12], InputError, "^body: its gzip data ends early"),
    ],
    ids=["unknown-coding", "not-gzip", "truncated-gzip"],  # stable ids: every xdist worker collects the same tests
)
def test_bad_or_unknown_codings_are_refused(coding, body, error, message):
    packed = base64.b64encode(body).decode()
    with pytest.raises(error, match=message):
        request_of(event("POST", body=packed, encoded=True, headers={"content-encoding": coding}), 1000)
