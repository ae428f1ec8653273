"""IoT Core topic rules, run locally: the SQL subset, and the actions with their error action.

Supported SQL: `SELECT *` or a list of fields (`a`, `a.b`, `topic(n)`, each optionally `AS name`)
`FROM 'filter'`, and an optional `WHERE` of comparisons (`=`, `<>`, `!=`, `<`, `<=`, `>`, `>=`)
between a field (or `topic(n)`) and a number or 'string', joined by AND. Anything else is an
"unsupported in local run" error naming the rule.
"""

from __future__ import annotations

import base64
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domicile.errors import ConfigError

_SQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+'(?P<topic>[^']+)'(?:\s+WHERE\s+(?P<where>.+?))?\s*;?\s*$", re.I | re.S
)
_FIELD = re.compile(r"^(?P<expr>topic\(\s*\d+\s*\)|[A-Za-z_][\w.]*)(?:\s+AS\s+(?P<alias>[A-Za-z_]\w*))?$", re.I)
_CONDITION = re.compile(
    r"^(?P<left>topic\(\s*\d+\s*\)|[A-Za-z_][\w.]*)\s*(?P<op>=|<>|!=|<=|>=|<|>)\s*(?P<right>'[^']*'|-?\d+(?:\.\d+)?)$",
    re.I,
)


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "<>": operator.ne, "!=": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


class UnsupportedRule(ConfigError):
    pass


@dataclass(frozen=True)
class Query:
    fields: list[tuple[str, str]] | None  # (expression, output name); None = SELECT *
    topic_filter: str
    conditions: list[tuple[str, str, Any]]

    def _value(self, expr: str, payload: dict[str, Any], topic: str) -> Any:
        match = re.match(r"topic\(\s*(\d+)\s*\)", expr, re.I)
        if match:
            parts = topic.split("/")
            index = int(match.group(1))
            return parts[index - 1] if 0 < index <= len(parts) else None
        value: Any = payload
        for key in expr.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def apply(self, payload: dict[str, Any], topic: str) -> dict[str, Any] | None:
        """The message the actions get, or None when WHERE filters it out."""
        for left, op, right in self.conditions:
            value = self._value(left, payload, topic)
            try:
                ok = bool(_OPERATORS[op](value, right))
            except TypeError:
                ok = False  # as in IoT Core: comparing unlike types is false
            if not ok:
                return None
        if self.fields is None:
            return payload
        return {name: self._value(expr, payload, topic) for expr, name in self.fields}


def parse_sql(rule: str, sql: str) -> Query:
    match = _SQL.match(sql)
    if not match:
        raise UnsupportedRule(
            f"rule {rule}: unsupported in local run: {sql!r} is not SELECT ... FROM '...' [WHERE ...]"
        )
    fields_text = match.group("fields").strip()
    fields = None
    if fields_text != "*":
        fields = []
        for part in fields_text.split(","):
            field = _FIELD.match(part.strip())
            if not field:
                raise UnsupportedRule(f"rule {rule}: unsupported in local run: field {part.strip()!r}")
            expr = field.group("expr")
            fields.append((expr, field.group("alias") or expr.split(".")[-1]))
    conditions = []
    if match.group("where"):
        for part in re.split(r"\s+AND\s+", match.group("where").strip(), flags=re.I):
            cond = _CONDITION.match(part.strip())
            if not cond:
                raise UnsupportedRule(f"rule {rule}: unsupported in local run: condition {part.strip()!r}")
            right_text = cond.group("right")
            right: Any = right_text[1:-1] if right_text.startswith("'") else float(right_text)
            conditions.append((cond.group("left"), cond.group("op"), right))
    return Query(fields, match.group("topic"), conditions)


@dataclass
class LocalRule:
    name: str
    stack: str
    region: str
    query: Query
    actions: list[dict[str, Any]]
    error_action: dict[str, Any] | None


SUPPORTED_ACTIONS = ("Sqs", "Lambda")


def rules_of(stack: Any) -> list[LocalRule]:
    out = []
    for lid, resource in stack.resources("AWS::IoT::TopicRule").items():
        payload = stack.resolve(resource["Properties"]["TopicRulePayload"])
        name = resource["Properties"].get("RuleName", lid)
        if payload.get("RuleDisabled"):
            continue
        for action in payload.get("Actions", []) + ([payload["ErrorAction"]] if payload.get("ErrorAction") else []):
            kinds = [k for k in action if k not in SUPPORTED_ACTIONS]
            if kinds:
                raise UnsupportedRule(f"rule {name}: unsupported in local run: action {kinds[0]}")
        out.append(LocalRule(name, stack.name, stack.region, parse_sql(name, payload["Sql"]), payload["Actions"],
                             payload.get("ErrorAction")))  # fmt: skip
    return out


def run_rule(
    rule: LocalRule, topic: str, raw: bytes, send_sqs: Callable[[str, str], None], invoke: Callable[[str, Any], None]
) -> str:
    """Apply one rule to one message; returns "filtered", "delivered" or "error-action"."""
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = {"raw": raw.decode(errors="replace")}  # IoT Core passes non-JSON on as-is
    if not isinstance(payload, dict):
        payload = {"value": payload}
    message = rule.query.apply(payload, topic)
    if message is None:
        return "filtered"
    try:
        for action in rule.actions:
            if "Sqs" in action:
                send_sqs(action["Sqs"]["QueueUrl"], json.dumps(message))
            elif "Lambda" in action:
                invoke(action["Lambda"]["FunctionArn"], message)
        return "delivered"
    except Exception as exc:
        if rule.error_action and "Sqs" in rule.error_action:
            failure = {"ruleName": rule.name, "topic": topic, "failures": [{"errorMessage": str(exc)}],
                       "base64OriginalPayload": base64.b64encode(raw).decode()}  # fmt: skip
            send_sqs(rule.error_action["Sqs"]["QueueUrl"], json.dumps(failure))
            return "error-action"
        raise
