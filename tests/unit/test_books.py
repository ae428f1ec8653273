"""The books per case: at-least-once delivery may dead-letter a message after its cases were counted."""

import base64
import json

from domicile.cloud.books import DeadLetter, StoreContents, cases_in, cases_in_text, reconcile

PUBLISHED = [f"dev-{d}/case-{c}" for d in range(3) for c in range(100)]


def _aggregated(cases):
    return {case: "line" for case in cases}


def _letter(message_id, *cases):
    return DeadLetter("dlq", message_id, tuple(("line", c) for c in cases))


def test_a_message_dead_lettered_after_it_was_counted_is_listed_apart_and_never_subtracted():
    # The run: every case aggregated, and two of their messages later reached the DLQ.
    stores = StoreContents(
        aggregated=_aggregated(PUBLISHED), counted_in_tables=300,
        dead_letters=[_letter("m-1", "dev-0/case-1", "dev-0/case-2"), _letter("m-2", "dev-2/case-9")],
    )  # fmt: skip
    books = reconcile(stores, PUBLISHED)
    assert books.balanced and books.difference == 0
    assert (books.aggregated, books.in_dlq, books.dlq_messages) == (300, 0, 2)
    assert books.dead_lettered_after_counted == ["m-1", "m-2"]
    assert "Dead-lettered after it was counted: 2 DLQ messages" in books.lines()[1]
    assert "m-1, m-2" in books.lines()[1]


def test_a_case_in_a_dlq_and_never_counted_is_in_dlq_and_the_books_still_balance():
    stores = StoreContents(
        aggregated=_aggregated(PUBLISHED[1:]), counted_in_tables=299, dead_letters=[_letter("m-1", PUBLISHED[0])]
    )
    books = reconcile(stores, PUBLISHED)
    assert books.balanced and (books.aggregated, books.in_dlq) == (299, 1)
    assert books.dead_lettered_after_counted == []
    assert books.lines() == ["Books balance: published 300 = aggregated 299 + quarantined 0 + in DLQ 1."]


def test_a_case_counted_twice_or_never_seen_unbalances_the_books_and_is_named():
    twice = reconcile(StoreContents(aggregated=_aggregated(PUBLISHED), counted_in_tables=301), PUBLISHED)
    assert not twice.balanced and twice.counted_twice == 1
    assert "the aggregates tables count 301 cases" in twice.lines()[0]
    lost = reconcile(StoreContents(aggregated=_aggregated(PUBLISHED[:-1]), counted_in_tables=299), PUBLISHED)
    assert not lost.balanced and lost.difference == 1 and lost.unaccounted_cases == [PUBLISHED[-1]]
    assert "never accounted for: dev-2/case-99" in lost.lines()[0]


def test_each_case_has_one_outcome_and_spooled_cases_are_not_lost():
    stores = StoreContents(
        aggregated=_aggregated(PUBLISHED[:250]), counted_in_tables=250,
        quarantined=[("line", c) for c in PUBLISHED[240:260]],  # 10 of them were also aggregated
        dead_letters=[_letter("m-1", *PUBLISHED[255:270])],
    )  # fmt: skip
    books = reconcile(stores, PUBLISHED, on_devices=PUBLISHED[265:])
    assert (books.aggregated, books.quarantined, books.in_dlq, books.still_on_devices) == (250, 10, 10, 30)
    assert books.balanced and books.difference == 0


def test_a_deployment_read_has_no_published_count_and_judges_what_the_stores_show():
    clean = reconcile(StoreContents(aggregated=_aggregated(PUBLISHED), counted_in_tables=300))
    assert clean.published is None and clean.difference is None and clean.balanced
    assert clean.lines()[0].startswith("Nothing counted twice, nothing lost in a DLQ: aggregated 300")
    lost = reconcile(StoreContents(counted_in_tables=0, dead_letters=[_letter("m-1", "dev-0/case-0")]))
    assert not lost.balanced and lost.in_dlq == 1


def test_an_envelope_archived_but_never_counted_is_named_apart_from_the_outcomes():
    stores = StoreContents(aggregated=_aggregated(PUBLISHED), counted_in_tables=300, archived_uncounted=["env-9"])
    books = reconcile(stores, PUBLISHED)
    assert books.balanced and books.archived_uncounted == ["env-9"]  # in flight: it changes no case's outcome
    assert books.lines()[1] == (
        "Archived but not counted: 1 envelopes whose count failed or is still in flight (their records come back "
        "from the queue, or are in its DLQ): env-9"
    )


def test_cases_are_read_through_lambda_and_iot_rule_failure_records():
    envelope = {"fleet": "line", "device": "dev-0", "payload": {"case_id": "c-1"}}
    assert cases_in({"requestPayload": envelope}) == [("line", "dev-0/c-1")]
    wrapped = {"base64OriginalPayload": base64.b64encode(json.dumps(envelope).encode()).decode()}
    assert cases_in(wrapped) == [("line", "dev-0/c-1")]
    assert cases_in_text("not json", "msg-7") == [("?", "msg-7")]  # unreadable: still one case, never none
