"""The local run's moto server: its DynamoDB transactions answer exactly as moto's own, rollbacks included.

Each scenario runs on plain moto and again with `item_snapshots` (what `domicile simulate` runs);
the errors and the tables' contents must be the same.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from domicile_local.sim.moto_server import item_snapshots

N = {"N": "1"}


def _add(table: str, key: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table, "Key": key, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": N},
    }  # fmt: skip
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


def _put_new(table: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


ROW = {"pk": {"S": "fleet#dev#model"}, "sk": {"S": "2026-11-25T10"}}
OTHER_ROW = {"pk": {"S": "fleet#dev#model"}, "sk": {"S": "2026-11-25T11"}}
MARKER = {"pk": {"S": "counted#m-1"}}
NEW_MARKER = {"pk": {"S": "counted#m-2"}}

SCENARIOS: dict[str, list[list[dict[str, Any]]]] = {
    "count once, then the same message again is refused as a whole": [
        [_add("agg", ROW), _put_new("markers", NEW_MARKER)],
        [_add("agg", ROW), _add("agg", OTHER_ROW), _put_new("markers", NEW_MARKER)],
    ],
    "a failed condition after two writes rolls both back": [
        [_add("agg", ROW), _put_new("markers", NEW_MARKER), _put_new("markers", MARKER)],
    ],
    "a new row, a deleted row and a failed condition": [
        [_put_new("markers", NEW_MARKER)],
        [
            _add("agg", {"pk": {"S": "new"}, "sk": {"S": "h"}}),
            {"Delete": {"TableName": "markers", "Key": NEW_MARKER}},
            _add("agg", ROW, condition="n > :one"),
        ],
    ],
    "the same item twice in one transaction is a validation error": [
        [_add("agg", ROW), _add("agg", ROW)],
    ],
    "an item without its sort key": [
        [_add("agg", {"pk": {"S": "x"}}), _put_new("markers", NEW_MARKER)],
    ],
    "an unknown table": [
        [_add("agg", ROW), _put_new("nowhere", NEW_MARKER)],
    ],
}


def _run(transactions: list[list[dict[str, Any]]]) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="eu-central-1")
        ddb.create_table(
            TableName="agg", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
        )  # fmt: skip
        ddb.create_table(
            TableName="markers", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )  # fmt: skip
        ddb.put_item(TableName="agg", Item={**ROW, "n": N})
        ddb.put_item(TableName="markers", Item=MARKER)
        outcomes = []
        for items in transactions:
            try:
                ddb.transact_write_items(TransactItems=copy.deepcopy(items))  # type: ignore[arg-type]
                outcomes.append("ok")
            except ClientError as error:
                reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
                outcomes.append(f"{error.response['Error']['Code']} {reasons}")
        tables = {
            name: sorted(ddb.scan(TableName=name)["Items"], key=lambda i: (i["pk"]["S"], i.get("sk", {}).get("S", "")))
            for name in ("agg", "markers")
        }
        return outcomes, tables


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_transactions_answer_as_plain_moto(name: str) -> None:
    expected = _run(SCENARIOS[name])
    with item_snapshots():
        assert _run(SCENARIOS[name]) == expected


def test_the_scenarios_do_fail_and_roll_back() -> None:
    # The comparison above only means something if the scenarios reach moto's rollback.
    outcomes, tables = _run(SCENARIOS["a failed condition after two writes rolls both back"])
    assert outcomes[0].startswith("TransactionCanceledException")
    assert [i["n"] for i in tables["agg"]] == [N]  # the ADD was undone
    assert tables["markers"] == [MARKER]  # and the new marker too


def test_no_table_is_copied_per_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    copied: list[str] = []
    real: Callable[..., Any] = copy.deepcopy

    def spy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, Table):
            copied.append(value.name)
        return real(value, memo)

    monkeypatch.setattr(copy, "deepcopy", spy)
    _run(SCENARIOS["count once, then the same message again is refused as a whole"])
    assert copied  # plain moto snapshots whole tables
    copied.clear()
    with item_snapshots():
        _run(SCENARIOS["count once, then the same message again is refused as a whole"])
    assert copied == []
