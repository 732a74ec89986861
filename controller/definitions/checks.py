"""Checking toolkit shared by every definitions reader (native and Heat).

``Where`` is a value's source position (file, line, dotted field path);
``Checks`` collects problems and reads typed fields of a mapping with a
default, naming file, line and field when a value does not fit. A reader
reports and goes on, so one load names every problem at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.values import coerce, kind_of
from setpoint.controller.definitions.yamlsource import YList, YMap
from setpoint.controller.errors import Problem

# Names of components, stacks, deployments, inputs, outputs, tools and files.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Where:
    """Where a value sits, for messages: file, line and dotted field path."""

    file: str
    line: int
    field: str

    def at(self, container: Any, key: Any) -> Where:
        """The position of ``container[key]``, one field deeper."""
        line = self.line
        if isinstance(container, YMap) and key in container.key_lines:
            line = container.key_lines[key]
        elif isinstance(container, YList) and isinstance(key, int):
            line = container.line_of(key)
        sub = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.field else str(key))
        return Where(self.file, line, self.field + sub)


def did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class Checks:
    """The problems found so far, and typed readers that add to them."""

    problems: list[Problem] = field(default_factory=list)

    # -- reporting -------------------------------------------------------------------

    def error(self, where: Where, message: str) -> None:
        self.problems.append(Problem(where.file, where.line, where.field, message))

    def warn(self, where: Where, message: str) -> None:
        self.problems.append(Problem(where.file, where.line, where.field, message, "warning"))

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Problems found inside are dropped (a value read again, reported once)."""
        saved, self.problems = self.problems, []
        try:
            yield
        finally:
            self.problems = saved

    # -- shapes ----------------------------------------------------------------------

    def mapping(self, value: Any, where: Where, what: str) -> YMap | None:
        if isinstance(value, YMap):
            return value
        self.error(where, f"expected {what} (a mapping), got {kind_of(value)}")
        return None

    def check_keys(
        self, m: YMap, where: Where, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> None:
        for key in m:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed)
                self.error(
                    where.at(m, key),
                    f"unknown key {key!r}{hint} (allowed: {', '.join(allowed)})",
                )
        for key in required:
            if key not in m:
                self.error(where, f"missing required key {key!r}")

    def mapping_items(
        self, m: YMap, key: str, where: Where, what: str, non_empty: bool = False
    ) -> Iterator[tuple[int, YMap, Where]]:
        """Each mapping of the list under ``key``: its index, itself and where it is.

        A missing key is an empty list; a non-list or a non-mapping item is reported.
        """
        raw = m.get(key)
        if raw is None:
            return
        lwhere = where.at(m, key)
        if not isinstance(raw, YList) or (non_empty and not raw):
            self.error(
                lwhere,
                f"expected a {'non-empty ' if non_empty else ''}list of {key}, got {kind_of(raw)}",
            )
            return
        for index, item in enumerate(raw):
            c = lwhere.at(raw, index)
            found = self.mapping(item, c, what)
            if found is not None:
                yield index, found, c

    # -- typed fields ----------------------------------------------------------------

    def text(self, m: YMap, key: str, where: Where, default: str = "") -> str:
        value = m.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            self.error(where.at(m, key), f"expected a string, got {kind_of(value)}")
            return default
        return value

    def name(self, m: YMap, key: str, where: Where, default: str, what: str) -> str:
        value = self.text(m, key, where, default)
        if not NAME_RE.match(value):
            self.error(
                where.at(m, key),
                f"invalid {what} name {value!r} (letters, digits, '_', '.', '-')",
            )
        return value

    def boolean(self, m: YMap, key: str, where: Where) -> bool:
        value = m.get(key, False)
        if not isinstance(value, bool):
            self.error(where.at(m, key), f"expected true or false, got {kind_of(value)}")
            return False
        return value

    def count(self, m: YMap, key: str, where: Where, minimum: int) -> int | None:
        """A whole number >= ``minimum``; ``None`` when absent or wrong."""
        if key not in m:
            return None
        value = m[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(
                where.at(m, key), f"expected a whole number >= {minimum}, got {kind_of(value)}"
            )
            return None
        return value

    def choice(
        self, m: YMap, key: str, where: Where, allowed: tuple[str, ...], default: str
    ) -> str:
        if key not in m:
            return default
        value = m[key]
        if value not in allowed:
            self.error(
                where.at(m, key), f"expected one of {', '.join(allowed)}, got {kind_of(value)}"
            )
            return default
        return str(value)

    def list_of_text(self, m: YMap, key: str, where: Where) -> list[tuple[str, Where]]:
        value = m.get(key)
        if value is None:
            return []
        if not isinstance(value, YList):
            self.error(where.at(m, key), f"expected a list, got {kind_of(value)}")
            return []
        out = []
        for index, item in enumerate(value):
            item_where = where.at(m, key).at(value, index)
            if not isinstance(item, str):
                self.error(item_where, f"expected a string, got {kind_of(item)}")
                continue
            out.append((item, item_where))
        return out

    def literal(self, type_name: str, value: Any, where: Where) -> Any:
        """``value`` as an input or parameter of ``type_name``; ``None`` if it does not fit."""
        try:
            return coerce(type_name, value)
        except ValueError as exc:
            self.error(where, str(exc))
            return None
