"""Input and parameter types, the way Heat defines them.

``coerce(type, value)`` returns the canonical value that goes into a derived
config, or raises ``ValueError`` with a message fit for an operator. Values
are canonicalised so that ``8080`` and ``"8080"`` for a String are the same
digest, and a CommaDelimitedList written as ``"a,b"`` or ``[a, b]`` too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

_TRUE = {"true", "yes", "on", "1", "t", "y"}
_FALSE = {"false", "no", "off", "0", "f", "n"}


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def coerce(type_name: str, value: Any) -> Any:
    """``value`` as an input or parameter of ``type_name``; ``ValueError`` if it does not fit."""
    convert = _COERCE.get(type_name)
    if convert is None:
        raise ValueError(f"unknown type {type_name!r}")
    return convert(value)


def kind_of(value: Any) -> str:
    """What a value is, in words, for "expected X, got Y" messages (never a
    Python type name: a user wrote YAML, not ``NoneType``)."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a value of an unexpected kind ({type(value).__name__})"


def _string(value: Any) -> Any:
    if not _scalar(value):
        raise ValueError(f"expected a String, got {kind_of(value)}")
    return _as_text(value)


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a Number, got a Boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("expected a finite Number")
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a Number, got {value!r}") from None
        return _number(number)
    raise ValueError(f"expected a Number, got {kind_of(value)}")


def _comma_delimited_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")] if value.strip() else []
    if isinstance(value, list) and all(_scalar(v) for v in value):
        return [_as_text(v) for v in value]
    raise ValueError("expected a CommaDelimitedList (a list of scalars or 'a,b,c')")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected Json, got a string that is not JSON: {exc}") from None
    return _plain(value)


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected a Boolean, got {kind_of(value)}")


_COERCE: dict[str, Callable[[Any], Any]] = {
    "String": _string,
    "Number": _number,
    "CommaDelimitedList": _comma_delimited_list,
    "Json": _json,
    "Boolean": _boolean,
}


def _plain(value: Any) -> Any:
    """Turn YAML containers (YMap, YList) and tuples into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Json values must be finite numbers")
    if value is None or _scalar(value):
        return value
    raise ValueError(f"{kind_of(value)} is not a JSON value")


def plain(value: Any) -> Any:
    return _plain(value)
