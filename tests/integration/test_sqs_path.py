"""The SQS entry point against moto: a bad record fails alone; good ones share one ORT run."""

import copy
import dataclasses
import json
import uuid

import boto3

from domicile.wire.envelope import result_message_id
from tests.conftest import REGION, drain, load_event


def _handler():
    from functions.inference import sqs_batch

    return sqs_batch


def test_bad_record_fails_alone_and_good_ones_are_answered(results_queue, lambda_context, monkeypatch):
    sqs_batch = _handler()
    calls = []
    original_run = sqs_batch.runtime.run

    def counting_run(entry, matrix):
        calls.append(matrix.shape)
        return original_run(entry, matrix)

    monkeypatch.setattr(sqs_batch.runtime, "run", counting_run)
    event = load_event("sqs-escalations.json")
    response = sqs_batch.handler(event, lambda_context)

    bad_id = event["Records"][1]["messageId"]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert calls == [(2, 64)]  # one vectorized run over the two good records

    answers = drain(results_queue)
    requests = [json.loads(event["Records"][i]["body"]) for i in (0, 2)]
    assert sorted(a["message_id"] for a in answers) == sorted(
        str(result_message_id(uuid.UUID(r["message_id"]))) for r in requests
    )
    for answer in answers:
        assert answer["kind"] == "result"
        assert answer["jurisdiction"] == "eu" and answer["home_region"] == REGION
        assert answer["model"]["name"] == "digits-cloud"
        assert answer["payload"]["source"] == "cloud" and len(answer["payload"]["case_ids"]) == 1
    escalated = {a["payload"]["case_ids"][0]: a["payload"]["escalated"] for a in answers}
    assert escalated == {"case-1": True, "case-2": False}  # case-2 is raw offload (no edge guess)


def test_redelivery_gives_the_same_result_ids(results_queue, lambda_context):
    sqs_batch = _handler()
    event = load_event("sqs-escalations.json")
    sqs_batch.handler(event, lambda_context)
    first = sorted(a["message_id"] for a in drain(results_queue))
    sqs_batch.handler(event, lambda_context)
    assert sorted(a["message_id"] for a in drain(results_queue)) == first


def test_wrong_kind_and_bad_features_fail_with_their_records(results_queue, lambda_context):
    sqs_batch = _handler()
    event = load_event("sqs-escalations.json")
    good = event["Records"][0]
    wrong_kind = copy.deepcopy(good)
    body = json.loads(wrong_kind["body"])
    body.update(kind="result", payload={"source": "edge", "case_ids": ["x"], "labels": ["1"], "confidence": [1]})
    wrong_kind.update(messageId="wrong-kind", body=json.dumps(body))
    short = copy.deepcopy(good)
    body = json.loads(short["body"])
    body["payload"]["features"] = [1.0] * 10
    short.update(messageId="short", body=json.dumps(body))
    response = sqs_batch.handler({"Records": [good, wrong_kind, short]}, lambda_context)
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["short", "wrong-kind"]
    assert len(drain(results_queue)) == 1


def test_refused_sends_are_reported_as_failures(results_queue, lambda_context, monkeypatch):
    sqs_batch = _handler()
    event = load_event("sqs-escalations.json")
    good_ids = [event["Records"][i]["messageId"] for i in (0, 2)]
    monkeypatch.setattr(sqs_batch.sink, "send", lambda pairs: [pairs[0][0]])
    response = sqs_batch.handler(event, lambda_context)
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert good_ids[0] in failed and good_ids[1] not in failed


def test_whole_batch_bad_names_every_record_as_failed(results_queue, lambda_context):
    sqs_batch = _handler()
    event = load_event("sqs-escalations.json")
    event["Records"] = [event["Records"][1], event["Records"][1] | {"messageId": "second"}]
    answer = sqs_batch.handler(event, lambda_context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]},
                                            {"itemIdentifier": "second"}]}  # fmt: skip
    assert (
        boto3.client("sqs", region_name=REGION).get_queue_attributes(
            QueueUrl=results_queue, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )


def test_nan_and_float32_overflow_fail_alone(results_queue, lambda_context):
    sqs_batch = _handler()
    event = load_event("sqs-escalations.json")
    good = event["Records"][0]
    nan = copy.deepcopy(good)
    nan.update(messageId="nan", body=good["body"].replace('"features": [0.0', '"features": [NaN', 1))
    huge = copy.deepcopy(good)
    body = json.loads(huge["body"])
    body["payload"]["features"][5] = 1e300
    huge.update(messageId="huge", body=json.dumps(body))
    response = sqs_batch.handler({"Records": [good, nan, huge]}, lambda_context)
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["huge", "nan"]
    assert len(drain(results_queue)) == 1


def test_a_batch_mixing_fleets_is_answered_by_each_fleets_cloud_model(
    results_queue, lambda_context, monkeypatch, tmp_path
):
    """FLEET_MODELS routes each record to its fleet's cloud model: one vectorized run per model."""
    import numpy as np

    from domicile.models.runtime import ModelRuntime
    from tests.user_models import user_registry

    sqs_batch = _handler()
    registry = user_registry(tmp_path / "models", tmp_path / "byom")
    monkeypatch.setattr(sqs_batch, "runtime", ModelRuntime(registry))
    routes = {"press-line": "windows-cloud"}
    monkeypatch.setattr(sqs_batch, "settings", dataclasses.replace(sqs_batch.settings, fleet_models=routes))
    with np.load(tmp_path / "byom" / "val.npz") as data:
        window = np.round(data["x"][0], 3).ravel().tolist()
    event = load_event("sqs-escalations.json")
    template = event["Records"][0]
    records = []
    for i, (fleet, features) in enumerate([("press-line", window), ("munich-line", [1.0] * 64),
                                           ("press-line", [1.0] * 64)]):  # fmt: skip
        body = json.loads(template["body"])
        body.update(message_id=str(uuid.uuid4()), fleet=fleet)
        body["payload"] = {"case_id": f"case-{i}", "features": features}
        record = copy.deepcopy(template)
        record.update(messageId=str(uuid.uuid4()), body=json.dumps(body))
        records.append(record)
    response = sqs_batch.handler({"Records": records}, lambda_context)
    # the third: a digits-sized case for a fleet whose model takes [3, 8] windows, refused alone
    assert response == {"batchItemFailures": [{"itemIdentifier": records[2]["messageId"]}]}
    answers = {a["payload"]["case_ids"][0]: a for a in drain(results_queue)}
    assert set(answers) == {"case-0", "case-1"}
    assert answers["case-0"]["model"]["name"] == "windows-cloud"
    assert answers["case-0"]["payload"]["labels"][0] in ("idle", "walk", "run", "jump")
    assert answers["case-1"]["model"]["name"] == "digits-cloud"


def test_queued_split_cases_are_finished_by_the_tail_beside_escalations_and_a_bad_one_fails_alone(
    results_queue, lambda_context
):
    """The queued cloud path: the `split` rule sends to the request queue, and one run answers both kinds."""
    from functions.inference import split_tail

    sqs_batch = _handler()
    split = load_event("iot-split.json")
    foreign_head = copy.deepcopy(split)
    foreign_head["message_id"] = str(uuid.uuid4())
    foreign_head["model"]["sha256"] = "f" * 64  # made by another head than this tail finishes
    template = load_event("sqs-escalations.json")["Records"][0]
    bodies = [json.loads(template["body"]), split, foreign_head]
    records = [{**template, "messageId": f"m-{i}", "body": json.dumps(b)} for i, b in enumerate(bodies)]
    response = sqs_batch.handler({"Records": records}, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    answers = {a["payload"]["source"]: a for a in drain(results_queue)}
    assert set(answers) == {"cloud", "split"}
    direct = split_tail.handler(split, lambda_context)  # the direct path's answer to the same case
    assert answers["split"]["message_id"] == direct["result"]
    assert answers["split"]["payload"]["labels"] == [direct["label"]]
    assert answers["split"]["model"]["name"] == "digits-deep"
