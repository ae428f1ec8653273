"""BatchGetItem over any number of keys of one table: pages of 100, unprocessed keys asked again.

The DynamoDB developer guide ("BatchGetItem"): a call takes at most 100 keys, and when it is
throttled or hits its response size it returns the rest as `UnprocessedKeys`, which "you can retry
... we strongly recommend that you use an exponential backoff algorithm". Those retries are bounded
here, so a table that keeps throttling ends in an error instead of a loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

BATCH_GET_MAX = 100  # BatchGetItem's limit on keys per call
UNPROCESSED_RETRIES = 8  # then the read fails (about 6 s of jittered backoff in all)


class UnprocessedKeysError(RuntimeError):
    """DynamoDB kept returning keys unprocessed after every retry."""


def batch_get(dynamodb: DynamoDBClient, table: str, keys: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item that exists among `keys` (strongly consistent), in no particular order."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_MAX):
        page: list[Any] = list(keys[start : start + BATCH_GET_MAX])
        for attempt in range(UNPROCESSED_RETRIES + 1):
            got: Any = dynamodb.batch_get_item(RequestItems={table: {"Keys": page, "ConsistentRead": True}})
            items += got["Responses"].get(table, [])
            page = list(got.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
            if not page:
                break
            if attempt == UNPROCESSED_RETRIES:
                raise UnprocessedKeysError(f"{len(page)} keys of {table} still unprocessed after {attempt} retries")
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))  # full jitter, as the SDKs back off
    return items
