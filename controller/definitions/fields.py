"""Fields that more than one reader reads: lifecycle actions, timeouts and
rolling-update policies (native definitions and Heat templates), typed
defaults (component inputs and stack parameters)."""

from __future__ import annotations

import re
from typing import Any

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.model import (
    EVERY_SERVER,
    HOT_TYPES,
    INPUT_TYPES,
    Preflight,
    UpdatePolicy,
)
from setpoint.controller.definitions.values import kind_of
from setpoint.controller.definitions.yamlsource import YMap
from setpoint.store.documents import LIFECYCLE_ACTIONS

# A component's named extra action (run with ``run: {action: BACKUP, token: ...}``).
CUSTOM_ACTION_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def read_actions(
    checks: Checks, m: YMap, where: Where, default: tuple[str, ...] | None, custom: bool = False
) -> tuple[str, ...]:
    """Lifecycle actions; with ``custom``, also named extra actions (``BACKUP``)."""
    if "actions" not in m and default is not None:
        return default
    seen: list[str] = []
    for action, action_where in checks.list_of_text(m, "actions", where):
        if custom and action not in LIFECYCLE_ACTIONS and CUSTOM_ACTION_RE.match(action):
            if action in seen:
                checks.error(action_where, f"action {action} listed twice")
            else:
                seen.append(action)
        elif action not in LIFECYCLE_ACTIONS:
            checks.error(
                action_where,
                f"unknown action {action!r} (one of {', '.join(LIFECYCLE_ACTIONS)})",
            )
        elif action in seen:
            checks.error(action_where, f"action {action} listed twice")
        else:
            seen.append(action)
    if not seen and "actions" in m:
        checks.error(where.at(m, "actions"), "expected at least one action")
    return tuple(seen)


def read_timeout(checks: Checks, m: YMap, where: Where) -> float | None:
    """``timeout``: a positive number of seconds, or ``None`` when absent or wrong."""
    if "timeout" not in m:
        return None
    value = m["timeout"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        checks.error(
            where.at(m, "timeout"), f"expected a positive number of seconds, got {kind_of(value)}"
        )
        return None
    return float(value)


def read_update_policy(
    checks: Checks, dm: YMap, key: str, where: Where, servers: int
) -> UpdatePolicy | None:
    """The batches policy under ``key`` (``update_policy``, ``batch_create``, ...)."""
    if key not in dm:
        return None
    c = where.at(dm, key)
    pm = checks.mapping(dm[key], c, key)
    if pm is None:
        return None
    checks.check_keys(pm, c, ("max_batch_size", "min_in_service", "pause_time", "canary"))
    pause = pm.get("pause_time", 0)
    if isinstance(pause, bool) or not isinstance(pause, int | float) or pause < 0:
        checks.error(c.at(pm, "pause_time"), f"expected seconds >= 0, got {kind_of(pause)}")
        pause = 0
    policy = UpdatePolicy(
        max_batch_size=checks.count(pm, "max_batch_size", c, 1),
        min_in_service=checks.count(pm, "min_in_service", c, 0) or 0,
        pause_time=float(pause),
        canary=checks.count(pm, "canary", c, 0) or 0,
    )
    if servers and policy.min_in_service >= servers:
        checks.error(
            c.at(pm, "min_in_service"),
            f"min_in_service {policy.min_in_service} leaves no server to update "
            f"(the deployment has {servers})",
        )
    return policy


# ``min_pass: 90%``: a whole percentage of the servers checked.
PERCENT_RE = re.compile(r"^\s*(\d{1,3})\s*%\s*$")


def read_preflight(
    checks: Checks, m: YMap, where: Where, default: Preflight | None, servers: int
) -> Preflight | None:
    """``preflight: true | false | {min_pass: N% | N}`` (``default`` when absent);
    ``servers`` is the number listed, 0 when unknown (a group)."""
    if "preflight" not in m:
        return default
    value = m["preflight"]
    c = where.at(m, "preflight")
    if isinstance(value, bool):
        return EVERY_SERVER if value else None
    if not isinstance(value, YMap):
        checks.error(c, f"expected true, false or {{min_pass: N% or N}}, got {kind_of(value)}")
        return None
    checks.check_keys(value, c, ("min_pass",), ("min_pass",))
    if "min_pass" not in value:
        return None
    raw = value["min_pass"]
    at = c.at(value, "min_pass")
    shown = repr(raw) if isinstance(raw, str | int | float) else kind_of(raw)
    percent = PERCENT_RE.match(raw) if isinstance(raw, str) else None
    if percent is not None and 1 <= int(percent.group(1)) <= 100:
        return Preflight(int(percent.group(1)), percent=True)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        if servers and raw > servers:
            checks.error(
                at,
                f"min_pass {raw} is more servers than the deployment has ({servers})",
            )
            return None
        return Preflight(raw, percent=False)
    checks.error(
        at, f"min_pass must be a percentage 1%..100% or a count of servers >= 1, got {shown}"
    )
    return None


def read_typed_default(checks: Checks, m: YMap, where: Where) -> tuple[str, Any, bool] | None:
    """(type, default, has_default) of an input or parameter; None if the type is unknown."""
    written = checks.text(m, "type", where, "String")
    type_name = HOT_TYPES.get(written, written)
    if type_name not in INPUT_TYPES:
        checks.error(
            where.at(m, "type"),
            f"unknown type {type_name!r} (one of {', '.join(INPUT_TYPES)})",
        )
        return None
    if "default" not in m:
        return type_name, None, False
    return type_name, checks.literal(type_name, m["default"], where.at(m, "default")), True
