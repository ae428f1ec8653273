"""moto's server, with DynamoDB transactions that cost what DynamoDB's do.

moto 5.2's `transact_write_items` deep-copies every table a transaction names, as its rollback
point, and the copies are never freed: with the aggregate table at a few thousand rows, each
transaction took tens of ms and kept about 1 MB. The `make soak` run found it (the local run slowed
down and grew without bound while our own processes stayed flat). Here the rollback point is a copy
of the items the transaction touches, which is all a rollback restores; moto's own checks and
writes run unchanged. tests/integration/test_moto_server.py holds both versions to the same
outcomes, rollbacks included.

    python -m domicile_local.sim.moto_server -H 127.0.0.1 -p 5000     (moto_server's own arguments)
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import moto.dynamodb.models as backend_module
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

Snapshot = tuple[Table, DynamoType, DynamoType | None, Item | None]

_original: Callable[..., None] = DynamoDBBackend.transact_write_items
_lock = threading.Lock()


def _key_of(table: Table, op_type: str, op: dict[str, Any]) -> tuple[DynamoType, DynamoType | None] | None:
    attrs = op.get("Item") if op_type == "Put" else op.get("Key")
    if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
        return None  # moto answers the malformed operation itself
    range_attr = table.range_key_attr
    if range_attr is not None and range_attr not in attrs:
        return None
    return DynamoType(attrs[table.hash_key_attr]), DynamoType(attrs[range_attr]) if range_attr else None


def _snapshot(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Snapshot]:
    snapshots = []
    for entry in transact_items:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        op_type, op = next(iter(entry.items()))
        table = backend.tables.get(str(op.get("TableName"))) if isinstance(op, dict) else None
        key = _key_of(table, op_type, op) if table is not None else None
        if table is None or key is None:
            continue
        current = table.get_item(*key)
        snapshots.append((table, key[0], key[1], copy.deepcopy(current)))
    return snapshots


def _restore(snapshots: list[Snapshot]) -> None:
    for table, hash_key, range_key, item in reversed(snapshots):
        if range_key is not None:
            rows: dict[DynamoType, Item] = table.items[hash_key]
            if item is None:
                rows.pop(range_key, None)
                if not rows:
                    del table.items[hash_key]
            else:
                rows[range_key] = item
        elif item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item  # type: ignore[assignment]  # as moto stores hash-only rows


def _tables_by_reference() -> SimpleNamespace:
    """`copy` as moto's module sees it: a table is "copied" by reference (the items are snapshotted)."""
    return SimpleNamespace(deepcopy=lambda v, memo=None: v if isinstance(v, Table) else copy.deepcopy(v, memo))


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    # One transaction at a time, as moto's own snapshot-and-swap assumed; the server is threaded.
    with _lock:
        snapshots = _snapshot(self, transact_items)
        try:
            _original(self, transact_items)
        except Exception:
            _restore(snapshots)
            raise


@contextmanager
def item_snapshots() -> Iterator[None]:
    """moto's transactions snapshot the items they touch, not whole tables, while this is open."""
    module_copy = vars(backend_module)["copy"]
    vars(backend_module)["copy"] = _tables_by_reference()
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.transact_write_items = _original  # type: ignore[method-assign]
        vars(backend_module)["copy"] = module_copy


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    with item_snapshots():
        moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
