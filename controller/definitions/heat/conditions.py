"""A template's ``conditions:`` section, with Heat's semantics
(``heat/engine/conditions.py``): each condition is a boolean or a condition
function (``equals``, ``not``, ``and``, ``or``, and ``get_param``; ``contains``
and ``yaql`` from 2017-09-01), evaluated once, from parameters only, so every
condition is known when the commit is read. ``not``, ``and`` and ``or`` take
booleans, condition names or condition functions; a ``condition:`` of a
resource or an output, and the first argument of ``if``, take the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from setpoint.controller.definitions.checks import Checks, Where, did_you_mean
from setpoint.controller.definitions.heat.builtins import (
    EQUALS,
    Builtin,
    builtins_of,
    call_builtin,
)
from setpoint.controller.definitions.heat.versions import (
    CONDITION_FUNCTIONS,
    NOT_EVALUATED,
    TemplateVersion,
)
from setpoint.controller.definitions.intrinsics import INVALID, walk
from setpoint.controller.definitions.values import kind_of
from setpoint.controller.definitions.yamlsource import YList, YMap

# ``get_param`` of the template's evaluator: the parameter's value or INVALID.
GetParam = Callable[[Any, Where], Any]


class Conditions:
    """The conditions of one template, each evaluated at most once."""

    def __init__(
        self,
        checks: Checks,
        version: TemplateVersion,
        definitions: YMap,
        where: Where,
        get_param: GetParam,
    ) -> None:
        self.checks = checks
        self.version = version
        self.definitions = definitions
        self.where = where
        self.get_param = get_param
        self.known: dict[str, bool | None] = {}
        self.evaluating: list[str] = []
        builtins = builtins_of(version)
        self.functions: dict[str, Builtin] = {"equals": EQUALS}
        for name in ("contains", "yaql"):
            if version.has_condition(name):
                self.functions[name] = builtins[name]

    def check_all(self) -> None:
        """Every condition evaluated once, used or not (Heat validates them all)."""
        for name in self.definitions:
            self.named(str(name), self.where.at(self.definitions, name))

    def truth(self, ref: Any, c: Where) -> bool | None:
        """A ``condition:`` or ``if``'s first argument: a boolean, a condition's
        name or a condition function; ``None`` when it has a problem (reported)."""
        if isinstance(ref, bool):
            return ref
        if isinstance(ref, str):
            return self.named(ref, c)
        got = self.evaluate(ref, c)
        if got is INVALID:
            return None
        return self.as_condition(got, c)

    def as_condition(self, value: Any, c: Where) -> bool | None:
        """Heat's ``_get_condition``: a boolean, or the name of a condition."""
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self.named(value, c)
        self.checks.error(c, f'Invalid condition "{_shown(value)}"')
        return None

    def named(self, name: str, c: Where) -> bool | None:
        """The condition ``name`` of the ``conditions:`` section."""
        if name in self.known:
            return self.known[name]
        if name not in self.definitions:
            hint = did_you_mean(name, tuple(map(str, self.definitions)))
            self.checks.error(c, f'Invalid condition "{name}"{hint}')
            return None
        if name in self.evaluating:
            loop = " -> ".join([*self.evaluating[self.evaluating.index(name) :], name])
            self.checks.error(c, f"conditions refer to each other in a loop: {loop}")
            return None
        self.evaluating.append(name)
        try:
            value = self.definition(name)
        finally:
            self.evaluating.pop()
        self.known[name] = value
        return value

    def definition(self, name: str) -> bool | None:
        raw = self.definitions[name]
        dc = self.where.at(self.definitions, name)
        if isinstance(raw, bool):
            return raw
        invalid = f'The definition of condition "{name}" is invalid: {_shown(raw)}'
        if not (isinstance(raw, YMap) and len(raw) == 1):
            self.checks.error(dc, invalid)
            return None
        got = self.evaluate(raw, dc)
        if got is INVALID:
            return None
        if not isinstance(got, bool):
            self.checks.error(dc, f"{invalid} (it gives {kind_of(got)}, not a boolean)")
            return None
        return got

    def evaluate(self, value: Any, c: Where) -> Any:
        """A snippet of a condition: only condition functions are evaluated."""
        return walk(value, c, self.call)

    def call(self, fn: str, arg: Any, c: Where) -> Any:
        """One function of a condition, or ``NotImplemented`` when ``fn`` is data."""
        if fn == "get_param":
            return self.get_param(arg, c)
        if fn in ("not", "and", "or"):
            return self.boolean(fn, arg, c)
        builtin = self.functions.get(fn)
        if builtin is not None:
            return call_builtin(fn, builtin, arg, c, self.checks, self.evaluate, _now)
        if self.version.has(fn) or fn in NOT_EVALUATED:
            allowed = ", ".join(f for f in CONDITION_FUNCTIONS if self.version.has_condition(f))
            self.checks.error(c, f'"{fn}" cannot be used in a condition (only {allowed})')
            return INVALID
        return NotImplemented

    def boolean(self, fn: str, arg: Any, c: Where) -> Any:
        """``not``, ``and``, ``or``: Heat's argument checks, then the truth."""
        if fn == "not":
            if arg is None:
                self.checks.error(c, 'Argument to "not" must be a condition')
                return INVALID
            items, where = [arg], [c]
        else:
            if not isinstance(arg, YList):
                self.checks.error(c, f'Arguments to "{fn}" must be a list of conditions')
                return INVALID
            if len(arg) < 2:
                self.checks.error(c, f'The minimum number of condition arguments to "{fn}" is 2.')
                return INVALID
            items, where = list(arg), [c.at(arg, i) for i in range(len(arg))]
        truths = []
        for item, ic in zip(items, where, strict=True):
            got = self.evaluate(item, ic)
            truth = None if got is INVALID else self.as_condition(got, ic)
            if truth is None:
                return INVALID
            truths.append(truth)
        if fn == "not":
            return not truths[0]
        return all(truths) if fn == "and" else any(truths)


def _now(_label: str, apply: Callable[[Any], Any], args: Any) -> Any:
    """Conditions read parameters only: every value is known now."""
    return apply(args)


def _shown(value: Any) -> str:
    """A value as Heat's messages show it (plain Python data)."""
    if isinstance(value, dict):
        return str({k: _shown_value(v) for k, v in value.items()})
    return str(_shown_value(value))


def _shown_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shown_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown_value(v) for v in value]
    return value
