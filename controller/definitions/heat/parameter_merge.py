"""Heat's ``parameter_merge_strategies``: how a parameter's value in a later
``-e`` file meets the value of an earlier one.

``overwrite`` (Heat's default) replaces it; ``merge`` and ``deep_merge`` join
them by the parameter's declared type, as Heat's
``heat.common.environment_util.merge_parameters`` does:

- ``comma_delimited_list``: two lists are one list, the earlier's items
  first; two strings are joined with ``,``;
- ``json``: the later map's keys over the earlier's (a later key whose value
  is null leaves the earlier one); ``deep_merge`` goes down into maps that
  both have, appends lists and joins strings end to end, as Heat's
  ``merge_map`` does;
- ``string``: the two strings end to end (Heat joins them with nothing);
- ``number`` and ``boolean``: Heat cannot merge them, so neither can setpoint.

Where Heat would fail (a type that cannot merge, a list onto a string, a
JSON value that is not a map), the error names the later value's file,
line and parameter, and the earlier value's file and line.

The merge needs the parameter's type, which only the template that
declares it knows, so a section keeps each name's values in file order and
merges them when a template asks for one (``MergedSection.value``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.intrinsics import INVALID
from setpoint.controller.definitions.values import kind_of

STRATEGIES = (OVERWRITE, MERGE, DEEP_MERGE) = ("overwrite", "merge", "deep_merge")


class MergeError(ValueError):
    """Two values of a parameter Heat could not merge; the message says why."""


@dataclass
class Given:
    """One file's value for a parameter, and the strategy it merges by."""

    value: Any
    where: Where
    strategy: str


@dataclass
class MergedSection:
    """One section (``parameters`` or ``parameter_defaults``) across the
    files: for each name, the values still in play, oldest first (an
    ``overwrite`` drops the ones before it)."""

    given: dict[str, list[Given]] = field(default_factory=dict)

    def add(self, name: str, value: Any, where: Where, strategy: str) -> None:
        kept = self.given.get(name, []) if strategy != OVERWRITE else []
        self.given[name] = [*kept, Given(value, where, strategy)]

    def __contains__(self, name: str) -> bool:
        return name in self.given

    def wheres(self) -> dict[str, Where]:
        """Each name and where its latest value is written."""
        return {name: values[-1].where for name, values in self.given.items()}

    def value(self, checks: Checks, name: str, heat_type: str) -> tuple[Any, Where]:
        """The merged value of ``name``, a parameter of ``heat_type``, and where
        the latest part of it is written; ``INVALID`` (the problem reported)
        where Heat could not merge it."""
        values = self.given[name]
        merged = values[0].value
        for before, later in pairwise(values):
            try:
                merged = merge_value(merged, later.value, heat_type, later.strategy == DEEP_MERGE)
            except MergeError as exc:
                checks.error(
                    later.where,
                    f"parameter {name!r} ({heat_type}, parameter_merge_strategies: "
                    f"{later.strategy}) cannot merge onto its value at "
                    f"{before.where.file}:{before.where.line}: {exc}",
                )
                return INVALID, later.where
        return merged, values[-1].where


def merge_value(old: Any, new: Any, heat_type: str, deep: bool) -> Any:
    """``new`` merged onto ``old`` as Heat merges a parameter of ``heat_type``."""
    if heat_type == "comma_delimited_list":
        return _merge_list(old, _sequence(new), "")
    if heat_type == "json":
        parsed = _json_map(new)
        if old and not isinstance(old, dict):
            raise MergeError(f"the earlier value is {kind_of(old)}, not a map")
        return _merge_map(old, parsed, deep, "")
    if heat_type == "string":
        if not isinstance(old, str) or not isinstance(new, str):
            got = new if isinstance(old, str) else old
            raise MergeError(f"Heat joins two strings, got {kind_of(got)}")
        return old + new
    if heat_type in ("number", "boolean"):
        # Heat refuses a number or boolean value here ("Invalid parameter in
        # environment"), and a quoted boolean with "Invalid merge strategy".
        raise MergeError(f"Heat cannot merge a {heat_type} parameter; use overwrite")
    # An unknown type is reported where the parameter is declared.
    return new


def _sequence(value: Any) -> Any:
    """Heat takes a string or a list to merge, nothing else."""
    if not isinstance(value, str | list):
        raise MergeError(f"Heat merges a string or a list, got {kind_of(value)}")
    return value


def _merge_list(old: Any, new: Any, at: str) -> Any:
    """Heat's ``merge_list``: lists are appended, strings joined with ``,``."""
    if not old:
        return new
    if isinstance(old, list) and isinstance(new, list):
        return [*old, *new]
    if isinstance(old, str) and isinstance(new, str):
        return f"{old},{new}"
    raise MergeError(f"{at}cannot merge {kind_of(new)} onto {kind_of(old)}")


def _json_map(value: Any) -> Any:
    """The later value as Heat reads a ``json`` one to merge: a string is
    parsed as JSON, anything else goes through JSON and back (so YAML's
    number keys become strings), and the result must be a map."""
    try:
        parsed = json.loads(value if isinstance(value, str) else json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise MergeError(f"Heat cannot read it as JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise MergeError(f"Heat merges a map, got {kind_of(parsed)}")
    return parsed


def _merge_map(old: Any, new: dict[str, Any], deep: bool, at: str) -> dict[str, Any]:
    """Heat's ``merge_map``, into a new map (the YAML read is shared by every
    stack that lists the file, so it is never changed)."""
    if not old:
        return new
    out = dict(old)
    for key, value in new.items():
        if value is None:
            continue
        here = f"{at}{key}."
        before = out.get(key)
        if not deep:
            out[key] = value
        elif isinstance(value, dict):
            if before and not isinstance(before, dict):
                raise MergeError(f"at {here[:-1]!r}: cannot merge a map onto {kind_of(before)}")
            out[key] = _merge_map(before, value, deep, here) if before else value
        elif isinstance(value, list):
            out[key] = _merge_list(before, value, f"at {here[:-1]!r}: ") if before else value
        elif isinstance(value, str):
            if not isinstance(before, str) and key in out:
                raise MergeError(f"at {here[:-1]!r}: cannot join a string to {kind_of(before)}")
            out[key] = (before or "") + value
        else:
            out[key] = value
    return out
