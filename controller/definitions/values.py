"""Input and parameter types, the way Heat defines them.

``coerce(type, value)`` returns the canonical value that goes into a derived
config, or raises ``ValueError`` with a message fit for an operator. Values
are canonicalised so that ``8080`` and ``"8080"`` for a String are the same
digest, and a CommaDelimitedList written as ``"a,b"`` or ``[a, b]`` too.
"""

from __future__ import annotations

import json
import math
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
    if type_name == "String":
        if not _scalar(value):
            raise ValueError(f"expected a String, got {type(value).__name__}")
        return _as_text(value)
    if type_name == "Number":
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
            return coerce("Number", number)
        raise ValueError(f"expected a Number, got {type(value).__name__}")
    if type_name == "CommaDelimitedList":
        if isinstance(value, str):
            return [part.strip() for part in value.split(",")] if value.strip() else []
        if isinstance(value, list) and all(_scalar(v) for v in value):
            return [_as_text(v) for v in value]
        raise ValueError("expected a CommaDelimitedList (a list of scalars or 'a,b,c')")
    if type_name == "Json":
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"expected Json, got a string that is not JSON: {exc}") from None
        return _plain(value)
    if type_name == "Boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected a Boolean, got {value!r}")
    raise ValueError(f"unknown type {type_name!r}")


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
    raise ValueError(f"{type(value).__name__} is not a JSON value")


def plain(value: Any) -> Any:
    return _plain(value)
