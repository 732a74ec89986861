"""The intrinsic functions of native stacks: ``get_param`` and ``get_file``
resolved while reading, ``get_attr`` kept as a ``GetAttr`` for rendering."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from setpoint.controller.definitions.checks import Where, did_you_mean
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.model import Computed, GetAttr, ParamDef
from setpoint.controller.definitions.references import References, qualify
from setpoint.controller.definitions.yamlsource import YList, YMap


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


# A value that could not be resolved (already reported): its input gets no value.
INVALID: Any = _Invalid()


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


# A value that is not there (Heat's ``if`` without a false value): a map leaves
# its key out, a list its item.
ABSENT: Any = _Absent()

# ``call(fn, arg, where)`` of a one-key mapping: its value, or ``NotImplemented``
# when ``fn`` names no function here (the mapping is data).
Call = Callable[[str, Any, Where], Any]


def walk(value: Any, where: Where, call: Call) -> Any:
    """A snippet resolved: each one-key mapping of the file is offered to ``call``
    as a function; other mappings and lists are walked. Anything ``INVALID``
    inside (its problem reported) makes the whole ``INVALID``; anything
    ``ABSENT`` is left out."""
    if isinstance(value, YMap) and len(value) == 1:
        fn, arg = next(iter(value.items()))
        if isinstance(fn, str):
            got = call(fn, arg, where.at(value, fn))
            if got is not NotImplemented:
                return got
    if isinstance(value, dict):
        out_map = {}
        for key, item in value.items():
            resolved = walk(item, where.at(value, key), call)
            if resolved is INVALID:
                return INVALID
            if resolved is not ABSENT:
                out_map[str(key)] = resolved
        return out_map
    if isinstance(value, list):
        out_list = []
        for index, item in enumerate(value):
            resolved = walk(item, where.at(value, index), call)
            if resolved is INVALID:
                return INVALID
            if resolved is not ABSENT:
                out_list.append(resolved)
        return out_list
    return value


def has_deferred(value: Any) -> bool:
    """Whether ``value`` is known only once an upstream reported (it holds a
    ``GetAttr``, or a ``Computed`` of one)."""
    if isinstance(value, GetAttr | Computed):
        return True
    if isinstance(value, dict):
        return any(has_deferred(v) for v in value.values())
    if isinstance(value, list):
        return any(has_deferred(v) for v in value)
    return False


class NativeIntrinsics:
    """Resolves the intrinsic functions of one native stack's values."""

    def __init__(
        self, files: CommitFiles, references: References, stack: str, params: dict[str, ParamDef]
    ) -> None:
        self.files = files
        self.checks = files.checks
        self.references = references
        self.stack = stack
        self.params = params

    def resolve(self, value: Any, where: Where) -> Any:
        """Resolve get_param and get_file now; turn get_attr into ``GetAttr``."""
        return walk(value, where, self.call)

    def call(self, fn: str, arg: Any, c: Where) -> Any:
        if fn == "get_param":
            return self.get_param(arg, c)
        if fn == "get_file":
            text = self.files.read_text(c.file, arg, c)
            return INVALID if text is None else text
        if fn == "get_attr":
            return self.get_attr(arg, c)
        return NotImplemented

    def get_param(self, arg: Any, c: Where) -> Any:
        if not isinstance(arg, str):
            self.checks.error(c, "get_param takes a parameter name")
            return INVALID
        param = self.params.get(arg)
        if param is None:
            hint = did_you_mean(arg, tuple(self.params))
            self.checks.error(c, f"unknown parameter {arg!r}{hint}")
            return INVALID
        if not param.has_default:
            self.checks.error(c, f"parameter {arg!r} has no value (give it a default)")
            return INVALID
        return param.default

    def get_attr(self, arg: Any, c: Where) -> Any:
        if (
            not isinstance(arg, YList)
            or len(arg) not in (2, 3)
            or not all(isinstance(a, str) for a in arg)
        ):
            self.checks.error(
                c, "get_attr takes [deployment, output] or [deployment, output, server]"
            )
            return INVALID
        ref = GetAttr(
            deployment=qualify(self.stack, arg[0]),
            output=arg[1],
            server=arg[2] if len(arg) == 3 else None,
            file=c.file,
            line=c.line,
        )
        self.references.attrs.append((ref, c))
        return ref
