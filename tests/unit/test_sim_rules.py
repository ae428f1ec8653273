"""The local run's IoT rule SQL subset: what it supports behaves as IoT Core does; the rest is refused by name."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from domicile_local.sim.rules import LocalRule, UnsupportedRule, parse_sql, rules_of, run_rule

TOPIC = "domicile/eu/munich-line/munich-line-0/result"


def test_select_star_passes_the_message_through():
    query = parse_sql("r", "SELECT * FROM 'domicile/+/+/+/result'")
    assert query.topic_filter == "domicile/+/+/+/result"
    assert query.apply({"a": 1}, TOPIC) == {"a": 1}


def test_fields_nested_fields_aliases_and_topic_segments():
    query = parse_sql("r", "SELECT device, payload.source AS src, topic(3) AS fleet FROM 'domicile/#'")
    message = {"device": "d1", "payload": {"source": "edge"}, "other": 1}
    assert query.apply(message, TOPIC) == {"device": "d1", "src": "edge", "fleet": "munich-line"}


def test_where_filters_with_comparisons_joined_by_and():
    query = parse_sql("r", "SELECT * FROM 'domicile/#' WHERE kind = 'result' AND payload.n >= 2 AND topic(2) <> 'us'")
    assert query.apply({"kind": "result", "payload": {"n": 2}}, TOPIC) is not None
    assert query.apply({"kind": "result", "payload": {"n": 1}}, TOPIC) is None
    assert query.apply({"kind": "escalate", "payload": {"n": 5}}, TOPIC) is None
    assert query.apply({"kind": "result", "payload": {"n": 5}}, "domicile/us/x/y/result") is None


def test_comparing_unlike_types_is_false_as_in_iot_core():
    query = parse_sql("r", "SELECT * FROM 'a/#' WHERE n > 3")
    assert query.apply({"n": "many"}, "a/b") is None
    assert query.apply({}, "a/b") is None


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT * FROM 'a/#' WHERE n IN (1, 2)", "condition 'n IN (1, 2)'"),
        ("SELECT timestamp() AS t FROM 'a/#'", "field 'timestamp() AS t'"),
        ("SELECT * FROM 'a/#' WHERE a = 1 OR b = 2", "condition 'a = 1 OR b = 2'"),
        ("SELECT * FROM (SELECT * FROM 'a')", "is not SELECT ... FROM '...' [WHERE ...]"),
    ],
)
def test_anything_else_is_unsupported_in_local_run_naming_the_rule(sql, named):
    with pytest.raises(UnsupportedRule) as caught:
        parse_sql("ResultsRule", sql)
    assert str(caught.value).startswith("rule ResultsRule: unsupported in local run:")
    assert named in str(caught.value)


class _Stack:
    """Just enough of a StackView for rules_of: one rule with the given actions."""

    name, region = "domicile-eu-central-1", "eu-central-1"

    def __init__(self, actions: list[dict[str, Any]]) -> None:
        self.rule = {"Type": "AWS::IoT::TopicRule", "Properties": {"RuleName": "to_kinesis", "TopicRulePayload": {
            "Sql": "SELECT * FROM 'a/#'", "Actions": actions}}}  # fmt: skip

    def resources(self, rtype: str) -> dict[str, Any]:
        return {"Rule": self.rule} if rtype == "AWS::IoT::TopicRule" else {}

    def resolve(self, value: Any) -> Any:
        return value


def test_an_action_the_local_run_cannot_perform_is_refused_naming_the_rule():
    with pytest.raises(UnsupportedRule, match="rule to_kinesis: unsupported in local run: action Kinesis"):
        rules_of(_Stack([{"Kinesis": {"StreamName": "s", "RoleArn": "r"}}]))
    (rule,) = rules_of(_Stack([{"Sqs": {"QueueUrl": "q", "RoleArn": "r"}}]))
    assert rule.name == "to_kinesis"


def _rule(error_action: dict[str, Any] | None) -> LocalRule:
    query = parse_sql("r", "SELECT * FROM 'a/#' WHERE kind = 'result'")
    return LocalRule("r", "s", "eu-central-1", query, [{"Sqs": {"QueueUrl": "results"}}], error_action)


def test_a_failing_action_goes_to_the_error_action_with_the_original_payload():
    sent: list[tuple[str, str]] = []

    def send(url: str, body: str) -> None:
        if url == "results":
            raise ConnectionError("queue unreachable")
        sent.append((url, body))

    raw = json.dumps({"kind": "result", "n": 1}).encode()
    outcome = run_rule(_rule({"Sqs": {"QueueUrl": "dlq"}}), "a/b", raw, send, lambda arn, event: None)
    assert outcome == "error-action"
    ((url, body),) = sent
    record = json.loads(body)
    assert url == "dlq"
    assert base64.b64decode(record["base64OriginalPayload"]) == raw
    assert record["failures"][0]["errorMessage"] == "queue unreachable"


def test_delivered_filtered_and_without_an_error_action_the_failure_surfaces():
    sent: list[tuple[str, str]] = []
    raw = json.dumps({"kind": "result"}).encode()
    assert run_rule(_rule(None), "a/b", raw, lambda u, b: sent.append((u, b)), lambda a, e: None) == "delivered"
    assert sent == [("results", raw.decode())]
    assert run_rule(_rule(None), "a/b", b'{"kind": "other"}', lambda u, b: sent.append((u, b)),
                    lambda a, e: None) == "filtered"  # fmt: skip
    with pytest.raises(ConnectionError):
        run_rule(_rule(None), "a/b", raw, lambda u, b: (_ for _ in ()).throw(ConnectionError("down")),
                 lambda a, e: None)  # fmt: skip
