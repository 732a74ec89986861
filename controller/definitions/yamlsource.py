"""YAML that remembers where each value came from.

Mappings load as ``YMap`` and sequences as ``YList``; both carry the line of
the node and of each key or item, so every later check can name the line of
the field it complains about. Duplicate keys, which PyYAML silently lets the
last one win, are reported as problems.
"""

from __future__ import annotations

from typing import Any

import yaml

from setpoint.controller.errors import Problem

# libyaml's parser when PyYAML was built with it (about ten times faster). It
# builds the same nodes, resolved by the same resolver; a document it refuses
# is parsed again by the pure-Python parser, so problems read the same.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)


class YMap(dict[Any, Any]):
    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class YList(list[Any]):
    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


def line_of(container: Any, key: Any, default: int) -> int:
    if isinstance(container, YMap | YList):
        return container.line_of(key)
    return default


def node_line(value: Any, default: int) -> int:
    return value.line if isinstance(value, YMap | YList) and value.line else default


class _Converter:
    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self.constructor = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, path: str) -> Any:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = YMap()
            out.line = line
            out.key_lines = {}
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
            items = YList()
            items.line = line
            items.item_lines = []
            for index, item in enumerate(node.value):
                items.append(self.convert(item, f"{path}[{index}]"))
                items.item_lines.append(item.start_mark.line + 1)
            return items
        return self.constructor.construct_object(node, deep=True)


def _compose(text: str) -> yaml.Node | None:
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass  # the pure-Python parser below says why, in its own words
    return yaml.compose(text, Loader=yaml.SafeLoader)


def load_yaml(text: bytes, file: str, problems: list[Problem]) -> Any:
    """Parse one YAML document. Syntax errors become a ``Problem``; returns None then."""
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
    if node is None:
        return None
    try:
        return _Converter(file, problems).convert(node, "")
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        problems.append(Problem(file, mark.line + 1 if mark else 0, "", f"YAML error: {exc}"))
        return None
