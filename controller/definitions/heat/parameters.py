"""A Heat template's ``parameters``: Heat's types, values from the template's
environment file and the selected setpoint environment, and constraints."""

from __future__ import annotations

import re
from typing import Any

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.environments import EnvironmentValues
from setpoint.controller.definitions.heat.secrets import is_secret
from setpoint.controller.definitions.intrinsics import INVALID, has_deferred
from setpoint.controller.definitions.model import HOT_TYPES, ParamDef
from setpoint.controller.definitions.yamlsource import YList, YMap

PARAM_TYPES = HOT_TYPES
PARAM_KEYS = (
    "type", "default", "description", "label", "hidden", "constraints", "immutable", "tags",
)  # fmt: skip


def read_parameters(
    checks: Checks,
    m: YMap,
    where: Where,
    env_file_values: dict[str, tuple[Any, Where]],
    environment: EnvironmentValues,
) -> tuple[dict[str, ParamDef], set[str]]:
    """The template's parameters with their values, and the names of the hidden ones.

    A value in the environment file replaces the default; a value of the
    selected setpoint environment replaces both.
    """
    hidden: set[str] = set()
    raw = m.get("parameters")
    if raw is None:
        return {}, hidden
    pwhere = where.at(m, "parameters")
    if checks.mapping(raw, pwhere, "parameters") is None:
        return {}, hidden
    declared: dict[str, ParamDef] = {}
    for pname, body in raw.items():
        c = pwhere.at(raw, pname)
        param = _parameter(checks, str(pname), body, c, env_file_values)
        if param is None:
            continue
        if body.get("hidden") is True:
            hidden.add(str(pname))
        declared[str(pname)] = param
    return environment.apply(declared), hidden


def _parameter(
    checks: Checks, name: str, body: Any, c: Where, env_file_values: dict[str, tuple[Any, Where]]
) -> ParamDef | None:
    pm = checks.mapping(body, c, "a parameter")
    if pm is None:
        return None
    checks.check_keys(pm, c, PARAM_KEYS, ("type",))
    heat_type = pm.get("type")
    type_name = PARAM_TYPES.get(str(heat_type))
    if type_name is None:
        checks.error(
            c.at(pm, "type"),
            f"unknown parameter type {heat_type!r} (one of {', '.join(PARAM_TYPES)})",
        )
        return None
    has = "default" in pm
    value = _value(checks, type_name, pm["default"], c.at(pm, "default")) if has else None
    deferred = False
    if name in env_file_values:
        env_raw, env_where = env_file_values[name]
        # A nested template's parameter may be given a value known only once
        # rendered, or a secret: it goes on as it is. One whose problem was
        # told where it is given (values Heat could not merge) stays INVALID.
        deferred = has_deferred(env_raw) or is_secret(env_raw)
        as_is = deferred or env_raw is INVALID
        value = env_raw if as_is else _value(checks, type_name, env_raw, env_where)
        has = True
    if has and not deferred and value is not INVALID:
        check_constraints(checks, pm, c, value)
    description = pm.get("description")
    return ParamDef(
        name=name,
        type=type_name,
        default=value,
        has_default=has,
        description=description if isinstance(description, str) else "",
    )


def _value(checks: Checks, type_name: str, raw: Any, where: Where) -> Any:
    """``raw`` as a value of ``type_name``; ``INVALID`` (its problem told here)
    when it does not fit, so that no use of the parameter reports it again."""
    value = checks.literal(type_name, raw, where)
    return INVALID if value is None and raw is not None else value


def check_constraints(checks: Checks, pm: YMap, c: Where, value: Any) -> None:
    """A parameter's value against its ``constraints`` (the last one broken is named)."""
    raw = pm.get("constraints")
    if not isinstance(raw, YList):
        return
    for i, item in enumerate(raw):
        if not isinstance(item, YMap):
            continue
        bad = _broken(item, value)
        if bad:
            why = item.get("description")
            checks.error(
                c.at(pm, "constraints").at(raw, i),
                f"parameter value {bad}" + (f" ({why})" if why else ""),
            )


def _broken(item: YMap, value: Any) -> str | None:
    """How ``value`` breaks one constraint, or ``None``."""
    bad = None
    if "allowed_values" in item and value not in (item["allowed_values"] or []):
        bad = f"{value!r} is not one of {list(item['allowed_values'])}"
    rng = item.get("range") or item.get("length")
    if isinstance(rng, YMap):
        size = len(value) if "length" in item and hasattr(value, "__len__") else value
        if isinstance(size, int | float) and not isinstance(size, bool):
            low, high = rng.get("min"), rng.get("max")
            if (low is not None and size < low) or (high is not None and size > high):
                bad = f"{value!r} is out of range {dict(rng)}"
    pattern = item.get("allowed_pattern")
    if isinstance(pattern, str) and isinstance(value, str) and not re.fullmatch(pattern, value):
        bad = f"{value!r} does not match {pattern!r}"
    return bad
