"""The ``yaql`` function's engine: the real YAQL package, set up as Heat sets
it up (at most 200 items per collection, 10000 bytes of memory per
expression), its results turned into JSON data.

Unlike Heat, the functions that read the clock, chance or the machine's time
zone (``now``, ``random``, ``localtz``) are left out: a render is a pure
function of the commit, and a config that changed on every pass would be
deployed again on every pass."""

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
IMPURE = ("now", "random", "localtz")


@cache
def _engine() -> tuple[Any, Any]:
    context = yaql.create_context()
    level = context
    while level is not None:  # the standard library sits in a parent context
        for name in IMPURE:
            for spec in level.get_functions(name)[0]:
                level.delete_function(spec)
        level = level.parent
    return yaql.YaqlFactory().create(dict(LIMITS)), context


def _bad(exc: Exception) -> str:
    named = [n for n in IMPURE if f'"#{n}"' in str(exc) or f'"{n}"' in str(exc)]
    if named:
        return (
            f"{named[0]}() is left out of setpoint's YAQL: a render must give the same "
            "config every time"
        )
    return f"Bad expression {exc}."


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
        return False, _bad(exc)
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
