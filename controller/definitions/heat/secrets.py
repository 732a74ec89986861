"""Values a Heat template must never show: a RandomString's value, and what
is computed from one. They stay marked as they flow through functions and
into nested templates, so the inputs they reach are secret (masked in plans,
``render`` and the agent's logs, as Heat's ``hidden`` inputs are)."""

from __future__ import annotations

from typing import Any

from setpoint.controller.definitions.model import Computed


class SecretText(str):
    """Text that is a secret; otherwise a ``str`` like any other."""

    __slots__ = ()


def is_secret(value: Any) -> bool:
    """Whether ``value`` holds a secret anywhere (or is computed from one)."""
    if isinstance(value, SecretText):
        return True
    if isinstance(value, Computed):
        return is_secret(value.args)
    if isinstance(value, dict):
        return any(is_secret(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_secret(v) for v in value)
    return False


def keep_secret(result: Any, args: Any) -> Any:
    """``result`` marked secret when the ``args`` it was computed from hold one."""
    return mark_secret(result) if is_secret(args) else result


def mark_secret(value: Any) -> Any:
    """Every text in ``value`` (a list or map made from a secret too) marked secret."""
    if isinstance(value, str):
        return value if isinstance(value, SecretText) else SecretText(value)
    if isinstance(value, dict):
        return {key: mark_secret(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mark_secret(item) for item in value]
    return value
