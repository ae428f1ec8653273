"""Component versions and NPM-style version requirements, as the nucleus reads them.

The nucleus parses requirements with semver4j's `Requirement.buildNPM` (nucleus
`DependencyResolver`): space-separated comparators that must all hold, alternatives joined by
`||`, a bare version meaning exactly that version, and `*` meaning any. Those are the forms
recipes and deployments use; anything else is refused with the requirement named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=)?\s*(\S+)$")


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a semantic version (major.minor.patch)")
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), pre or "")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        mine, theirs = (self.major, self.minor, self.patch), (other.major, other.minor, other.patch)
        if mine != theirs:
            return mine < theirs
        return bool(self.pre) and (not other.pre or self.pre < other.pre)  # a pre-release sorts first

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.pre}" if self.pre else "")


def satisfies(version: str, requirement: str) -> bool:
    """Whether `version` meets an NPM-style `requirement` (ValueError names a malformed one)."""
    candidate = Version.parse(version)
    for alternative in requirement.split("||"):
        terms = alternative.replace(">= ", ">=").replace("<= ", "<=").replace("> ", ">").replace("< ", "<").split()
        if all(_holds(candidate, term, requirement) for term in terms or ["*"]):
            return True
    return False


def _holds(candidate: Version, term: str, requirement: str) -> bool:
    if term in ("*", "x", "X"):
        return True
    match = _COMPARATOR.match(term)
    if not match:
        raise ValueError(f"version requirement {requirement!r}: cannot read {term!r}")
    op, text = match.groups()
    try:
        bound = Version.parse(text)
    except ValueError as exc:
        raise ValueError(f"version requirement {requirement!r}: {exc}") from exc
    return {
        ">=": candidate >= bound,
        "<=": candidate <= bound,
        ">": candidate > bound,
        "<": candidate < bound,
    }.get(op or "=", candidate == bound)
