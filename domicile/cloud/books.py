"""The books, per case: every case published is aggregated, quarantined, dead-lettered unanswered or still
on a device, and counted once (pure logic; `domicile.aws.stores` reads what it needs from a region).

SQS delivers at least once, so a message can reach its DLQ after its cases were counted (its batch
outlived the visibility timeout, or the function died after counting). Such a message is listed on its
own ("dead-lettered after it was counted", with its ids): redriving it is harmless, and the books never
subtract it. Only cases no store counted are "in a DLQ".
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

CaseKey = str  # "device/case id": a case as the books know it
UNKNOWN_FLEET = "?"


def cases_in(message: Any) -> list[tuple[str, CaseKey]]:
    """(fleet, case) pairs a message carries: an envelope, or a Lambda or IoT rule failure record around one."""
    if not isinstance(message, dict):
        return []
    if "requestPayload" in message:  # a Lambda async failure record (the on-failure destination)
        return cases_in(message["requestPayload"])
    if "base64OriginalPayload" in message:  # an IoT rule error action's record
        try:
            return cases_in(json.loads(base64.b64decode(message["base64OriginalPayload"])))
        except ValueError:
            return []
    payload = message.get("payload") or {}
    fleet = str(message.get("fleet", UNKNOWN_FLEET))
    device = str(message.get("device", UNKNOWN_FLEET))
    if isinstance(payload, dict) and "case_ids" in payload:
        return [(fleet, f"{device}/{c}") for c in payload["case_ids"]]
    if isinstance(payload, dict) and "case_id" in payload:
        return [(fleet, f"{device}/{payload['case_id']}")]
    return []


def cases_in_text(text: str | bytes, fallback: str) -> list[tuple[str, CaseKey]]:
    """The cases of a message body; one unknown case named `fallback` when it cannot be read (never none)."""
    try:
        cases = cases_in(json.loads(text))
    except ValueError:
        cases = []
    return cases or [(UNKNOWN_FLEET, fallback)]


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    message_id: str
    cases: tuple[tuple[str, CaseKey], ...]


@dataclass
class StoreContents:
    """What a region's stores hold, read directly: the tables, the bucket and the DLQs."""

    aggregated: dict[CaseKey, str] = field(default_factory=dict)  # case -> fleet, of envelopes counted (marker set)
    counted_in_tables: int = 0  # what the count rows add up to
    quarantined: list[tuple[str, CaseKey]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # envelope ids archived without a marker: their count failed or has not happened yet (still in flight)
    archived_uncounted: list[str] = field(default_factory=list)

    def merge(self, other: StoreContents) -> StoreContents:
        return StoreContents(
            aggregated={**self.aggregated, **other.aggregated},
            counted_in_tables=self.counted_in_tables + other.counted_in_tables,
            quarantined=self.quarantined + other.quarantined, dead_letters=self.dead_letters + other.dead_letters,
            archived_uncounted=self.archived_uncounted + other.archived_uncounted,
        )  # fmt: skip


class Books(BaseModel):
    """Each case once: aggregated, quarantined, in a DLQ and never aggregated, or still on a device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    published: int | None  # None when read from a deployment: only the devices know what they sent
    aggregated: int
    quarantined: int
    in_dlq: int  # cases of dead-lettered messages that no store counted
    dlq_messages: int
    dead_lettered_after_counted: list[str]  # DLQ message ids whose cases were all counted: redriving is harmless
    still_on_devices: int
    difference: int | None  # published minus the four outcomes; 0 when the books balance
    counted_in_tables: int  # what the aggregates tables' count rows add up to, read from DynamoDB
    counted_twice: int  # counted in the tables beyond the distinct cases aggregated
    balanced: bool  # of a run: every case published has one outcome, none counted twice; of a deployment: none
    # counted twice and none in a DLQ unanswered
    unaccounted_cases: list[CaseKey]  # published, in none of the four outcomes (the first 50)
    injected_violations: int = 0
    injected_quarantined: int = 0
    archived_uncounted: list[str] = []  # envelopes archived whose count has not (yet) succeeded (the first 50)

    def lines(self) -> list[str]:
        """The books in words: the equation and its verdict, then the DLQ messages that are safe to redrive."""
        outcomes = f"aggregated {self.aggregated} + quarantined {self.quarantined} + in DLQ {self.in_dlq}" + (
            f" + still spooled on devices {self.still_on_devices}" if self.still_on_devices else ""
        )
        twice = f"; the aggregates tables count {self.counted_in_tables} cases" if self.counted_twice else ""
        if self.published is None:
            verdict = "Nothing counted twice, nothing lost in a DLQ" if self.balanced else "Books do NOT balance"
            first = f"{verdict}: {outcomes}{twice}."
        elif self.balanced:
            first = f"Books balance: published {self.published} = {outcomes}."
        else:
            named = ", ".join(self.unaccounted_cases[:10])
            first = (
                f"Books do NOT balance: published {self.published} = {outcomes} leaves a difference of "
                f"{self.difference}" + (f"; never accounted for: {named}" if named else "") + twice + "."
            )
        lines = [first]
        if self.archived_uncounted:
            ids = ", ".join(self.archived_uncounted[:10])
            lines.append(
                f"Archived but not counted: {len(self.archived_uncounted)} envelopes whose count failed or is still "
                f"in flight (their records come back from the queue, or are in its DLQ): {ids}"
            )
        if self.dead_lettered_after_counted:
            ids = ", ".join(self.dead_lettered_after_counted[:10])
            more = len(self.dead_lettered_after_counted) - 10
            lines.append(
                f"Dead-lettered after it was counted: {len(self.dead_lettered_after_counted)} DLQ messages whose cases "
                f"were all aggregated (redriving them is harmless): {ids}" + (f" and {more} more" if more > 0 else "")
            )
        return lines


class Outcome(StrEnum):
    AGGREGATED = "aggregated"
    QUARANTINED = "quarantined"
    IN_DLQ = "in_dlq"


def outcomes(stores: StoreContents) -> dict[CaseKey, tuple[str, Outcome]]:
    """Each case the stores know, with its fleet and its one outcome (aggregated before quarantined before DLQ)."""
    out: dict[CaseKey, tuple[str, Outcome]] = {}
    for letter in stores.dead_letters:
        out.update({case: (fleet, Outcome.IN_DLQ) for fleet, case in letter.cases})
    out.update({case: (fleet, Outcome.QUARANTINED) for fleet, case in stores.quarantined})
    out.update({case: (fleet, Outcome.AGGREGATED) for case, fleet in stores.aggregated.items()})
    return out


def fleet_counts(stores: StoreContents) -> dict[str, Counter[Outcome]]:
    """Per fleet, how many of its cases ended in each outcome."""
    counts: dict[str, Counter[Outcome]] = {}
    for fleet, outcome in outcomes(stores).values():
        counts.setdefault(fleet, Counter())[outcome] += 1
    return counts


def reconcile(
    stores: StoreContents, published: Iterable[CaseKey] | None = None, on_devices: Iterable[CaseKey] = (),
    injected: Iterable[CaseKey] = (),
) -> Books:  # fmt: skip
    """The books of a run (published known) or of a deployment (published None: the outcomes only)."""
    known = outcomes(stores)
    by_outcome = {kind: {c for c, (_, o) in known.items() if o is kind} for kind in Outcome}
    aggregated, quarantined, dead = (by_outcome[k] for k in Outcome)
    held = set(on_devices) - set(known)
    harmless = [d.message_id for d in stores.dead_letters if all(c in aggregated for _, c in d.cases)]
    injected_cases = set(injected)
    sent = None if published is None else set(published) | injected_cases
    difference = None if sent is None else len(sent) - len(known) - len(held)
    unaccounted = sorted(sent - set(known) - held) if sent is not None else []
    counted_twice = stores.counted_in_tables - len(aggregated)
    return Books(
        published=None if sent is None else len(sent), aggregated=len(aggregated), quarantined=len(quarantined),
        in_dlq=len(dead), dlq_messages=len(stores.dead_letters), dead_lettered_after_counted=sorted(harmless),
        still_on_devices=len(held), difference=difference, counted_in_tables=stores.counted_in_tables,
        counted_twice=counted_twice,
        balanced=counted_twice == 0 and (not dead if sent is None else difference == 0 and not unaccounted),
        unaccounted_cases=unaccounted[:50], injected_violations=len(injected_cases),
        injected_quarantined=len(injected_cases & quarantined),
        archived_uncounted=sorted(stores.archived_uncounted)[:50],
    )  # fmt: skip
