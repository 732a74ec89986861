"""YAML that remembers where each value came from.

Mappings load as ``YMap`` and sequences as ``YList``; both carry the line of
the node and of each key or item, so every later check can name the line of
the field it complains about. Duplicate keys, which PyYAML silently lets the
last one win, are reported as problems.

A definitions file is read by a daemon that must keep serving, so what one
file may cost is bounded: its size, its nesting depth, and how far its
aliases may expand (an eleven-line "billion laughs" would otherwise take
minutes and gigabytes). Each bound is a problem naming the file, never a
crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from setpoint.controller.errors import Problem

# libyaml's parser when PyYAML was built with it (about ten times faster). It
# builds the same nodes, resolved by the same resolver; a document it refuses
# is parsed again by the pure-Python parser, so problems read the same.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)

# Far above any real definitions file, far below what hurts a controller.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100
# Aliases may repeat a node, not multiply a document: the values built may
# number at most this many times the nodes written, plus a little.
MAX_ALIAS_EXPANSION = 10
_EXPANSION_SLACK = 10_000


_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _TooBig(Exception):
    def __init__(self, line: int, path: str, reason: str) -> None:
        self.line, self.path, self.reason = line, path, reason


class YMap(dict[Any, Any]):
    """A mapping with the line of the node and of each key (0: not from a file).

    An empty ``YMap()`` stands for an absent section, so it must answer
    ``line_of`` and ``key_lines`` like any parsed one.
    """

    def __init__(
        self,
        items: Mapping[Any, Any] | None = None,
        *,
        line: int = 0,
        key_lines: Mapping[Any, int] | None = None,
    ) -> None:
        super().__init__(items or {})
        self.line = line
        self.key_lines: dict[Any, int] = dict(key_lines or {})

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class YList(list[Any]):
    """A sequence with the line of the node and of each item (0: not from a file)."""

    def __init__(self, *, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


def line_of(container: Any, key: Any, default: int) -> int:
    if isinstance(container, YMap | YList):
        return container.line_of(key)
    return default


def _distinct_nodes(root: yaml.Node) -> int:
    """How many nodes the document wrote (an alias is its anchor's node again)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return len(seen)


class _Converter:
    def __init__(self, file: str, problems: list[Problem], budget: int) -> None:
        self.file = file
        self.problems = problems
        self.constructor = yaml.SafeLoader("")
        self.budget = budget
        self.depth = 0

    def convert(self, node: yaml.Node, path: str) -> Any:
        line = node.start_mark.line + 1
        self.budget -= 1
        if self.budget < 0:
            raise _TooBig(line, path, "aliases expand to far more values than the file holds")
        if node.tag == _TIMESTAMP:
            # As Heat loads templates: an unquoted date stays the text written
            # (a date is no JSON value, and no value setpoint reads is a date).
            return node.value
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self.constructor.construct_object(node, deep=True)
        if self.depth >= MAX_DEPTH:
            raise _TooBig(line, path, f"nested deeper than {MAX_DEPTH} levels")
        self.depth += 1
        try:
            return self._container(node, path, line)
        finally:
            self.depth -= 1

    def _container(self, node: yaml.Node, path: str, line: int) -> Any:
        if isinstance(node, yaml.MappingNode):
            out = YMap(line=line)
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(
                        Problem(self.file, line, path, "YAML merge keys (<<) are not supported")
                    )
                    continue
                key = self.convert(key_node, path)
                key_line = key_node.start_mark.line + 1
                if isinstance(key, YMap | YList):
                    self.problems.append(
                        Problem(self.file, key_line, path, "a mapping key must be a scalar")
                    )
                    continue
                child = f"{path}.{key}" if path else str(key)
                if key in out:
                    self.problems.append(
                        Problem(
                            self.file,
                            key_line,
                            child,
                            f"duplicate key (first at line {out.key_lines[key]})",
                        )
                    )
                    continue
                out[key] = self.convert(value_node, child)
                out.key_lines[key] = key_line
            return out
        if isinstance(node, yaml.SequenceNode):
            items = YList(line=line)
            for index, item in enumerate(node.value):
                items.append(self.convert(item, f"{path}[{index}]"))
                items.item_lines.append(item.start_mark.line + 1)
            return items
        raise AssertionError(f"not a container: {node!r}")


def _compose(text: str) -> yaml.Node | None:
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.MarkedYAMLError as exc:
            if "nesting depth" in str(exc.problem):
                raise  # libyaml's own bound; the pure-Python parser would recurse
        except yaml.YAMLError:
            pass  # the pure-Python parser below says why, in its own words
    return yaml.compose(text, Loader=yaml.SafeLoader)


def load_yaml(text: bytes, file: str, problems: list[Problem]) -> Any:
    """Parse one YAML document. Syntax errors become a ``Problem``; returns None then."""
    if len(text) > MAX_DOCUMENT_BYTES:
        problems.append(
            Problem(file, 0, "", f"{len(text)} bytes: larger than {MAX_DOCUMENT_BYTES} bytes")
        )
        return None
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(file, 0, "", f"not UTF-8 text: {exc}"))
        return None
    try:
        node = _compose(decoded)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problems.append(Problem(file, line, "", f"YAML syntax error: {exc.problem or exc}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 0, "", f"YAML error: {exc}"))
        return None
    except RecursionError:
        problems.append(Problem(file, 0, "", f"nested deeper than {MAX_DEPTH} levels"))
        return None
    if node is None:
        return None
    budget = MAX_ALIAS_EXPANSION * _distinct_nodes(node) + _EXPANSION_SLACK
    try:
        return _Converter(file, problems, budget).convert(node, "")
    except _TooBig as exc:
        problems.append(Problem(file, exc.line, exc.path, exc.reason))
        return None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        problems.append(Problem(file, mark.line + 1 if mark else 0, "", f"YAML error: {exc}"))
        return None
