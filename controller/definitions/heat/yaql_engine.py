"""The ``yaql`` function's engine: the real YAQL package, set up as Heat sets
it up (at most 200 items per collection, 10000 bytes of memory per
expression), its results turned into JSON data."""

from __future__ import annotations

# yaql 3.2 reads ``collections.abc`` without importing it: it only works once
# something else has imported that module.
import collections.abc  # noqa: F401 -- see above
from functools import cache
from typing import Any

import yaql
from yaql.language import exceptions as yaql_errors

# Heat's defaults for [yaql] limit_iterators and memory_quota.
LIMITS = {"yaql.limitIterators": 200, "yaql.memoryQuota": 10000}


@cache
def _engine() -> tuple[Any, Any]:
    return yaql.YaqlFactory().create(dict(LIMITS)), yaql.create_context()


def yaql_check(expression: str) -> str | None:
    """Heat's parse-time check: ``None``, or why the expression does not parse."""
    parse, _context = _engine()
    try:
        parse(expression)
    except yaql_errors.YaqlException as exc:
        return f"Bad expression {exc}."
    return None


def yaql_evaluate(expression: str, data: Any) -> tuple[bool, Any]:
    """``(True, value)`` of ``expression`` over ``$.data``, or ``(False, why)``."""
    parse, context = _engine()
    try:
        statement = parse(expression)
        value = statement.evaluate({"data": data}, context.create_child_context())
    except yaql_errors.YaqlException as exc:
        return False, f"Bad expression {exc}."
    except Exception as exc:  # an expression's own failure (a bad type, a limit), named
        return False, f"yaql: the expression failed: {type(exc).__name__}: {exc}"
    try:
        return True, _as_json(value)
    except TypeError as exc:
        return False, f"yaql: the result is not JSON data: {exc}"


def _as_json(value: Any) -> Any:
    """YAQL's tuples, sets and iterators as lists; anything not JSON is an error."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_as_json(v) for v in value), key=repr)
    raise TypeError(f"a {type(value).__name__}")
