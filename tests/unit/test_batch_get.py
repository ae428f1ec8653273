"""BatchGetItem paging and unprocessed keys, as the DynamoDB API reference describes the response."""

from typing import Any

import pytest

from domicile.aws.batch_get import BATCH_GET_MAX, UNPROCESSED_RETRIES, UnprocessedKeysError, batch_get

TABLE = "aggregates"


class Throttling:
    """Answers each call's keys, holding back the last `hold` of them as UnprocessedKeys, `times` times."""

    def __init__(self, hold: int, times: int) -> None:
        self.hold, self.times = hold, times
        self.calls: list[list[dict[str, Any]]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        request = RequestItems[TABLE]
        assert request["ConsistentRead"] is True
        keys = request["Keys"]
        assert len(keys) <= BATCH_GET_MAX
        self.calls.append(keys)
        held = keys[len(keys) - self.hold :] if self.times > 0 and self.hold else []
        self.times -= 1 if held else 0
        answered = keys[: len(keys) - len(held)]
        out: dict[str, Any] = {"Responses": {TABLE: [dict(k, found={"BOOL": True}) for k in answered]}}
        if held:
            out["UnprocessedKeys"] = {TABLE: {"Keys": held, "ConsistentRead": True}}
        return out


def _keys(n: int) -> list[dict[str, Any]]:
    return [{"pk": {"S": f"k{i}"}, "sk": {"S": "s"}} for i in range(n)]


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("domicile.aws.batch_get.time.sleep", slept.append)
    return slept


def test_keys_are_asked_in_pages_of_100_and_unprocessed_ones_again_after_a_backoff(backoffs: list[float]) -> None:
    client = Throttling(hold=30, times=2)
    items = batch_get(client, TABLE, _keys(250))  # type: ignore[arg-type]
    assert sorted(i["pk"]["S"] for i in items) == sorted(f"k{i}" for i in range(250))
    assert [len(c) for c in client.calls] == [100, 30, 30, 100, 50]
    assert len(backoffs) == 2 and all(0 <= s <= 2.0 for s in backoffs)


def test_keys_that_stay_unprocessed_end_in_an_error_not_a_loop(backoffs: list[float]) -> None:
    client = Throttling(hold=5, times=10**6)
    with pytest.raises(UnprocessedKeysError, match="5 keys of aggregates still unprocessed"):
        batch_get(client, TABLE, _keys(5))  # type: ignore[arg-type]
    assert len(client.calls) == UNPROCESSED_RETRIES + 1 and len(backoffs) == UNPROCESSED_RETRIES


def test_no_keys_make_no_call(backoffs: list[float]) -> None:
    client = Throttling(hold=0, times=0)
    assert batch_get(client, TABLE, []) == [] and client.calls == []  # type: ignore[arg-type]
