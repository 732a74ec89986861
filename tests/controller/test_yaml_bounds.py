"""What one definitions file may cost is bounded: size, depth, alias expansion.

Each bound is a problem naming the file, never a crash or a stalled daemon."""

from __future__ import annotations

import pytest

from setpoint.controller.definitions import yamlsource
from setpoint.controller.definitions.yamlsource import load_yaml
from setpoint.controller.errors import Problem

LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
j: &j [*i, *i, *i, *i, *i, *i, *i, *i, *i]
kind: Stack
"""


def load(text: str) -> tuple[object, list[Problem]]:
    problems: list[Problem] = []
    return load_yaml(text.encode(), "stacks/x.yaml", problems), problems


def test_an_alias_bomb_is_a_problem_not_minutes_and_gigabytes() -> None:
    doc, problems = load(LAUGHS)
    assert doc is None
    [problem] = problems
    assert problem.file == "stacks/x.yaml"
    assert "aliases expand" in problem.message


def test_aliases_that_repeat_a_value_a_few_times_still_load() -> None:
    doc, problems = load("base: &b {port: 80}\nweb: *b\napi: *b\n")
    assert problems == []
    assert doc == {"base": {"port": 80}, "web": {"port": 80}, "api": {"port": 80}}


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 20_000 + "]" * 20_000 + "\n",  # flow style
        "".join(" " * i + "k:\n" for i in range(2_000)),  # block style
    ],
    ids=["flow", "block"],
)
def test_deep_nesting_is_a_problem_not_a_recursion_error(text: str) -> None:
    doc, problems = load(text)
    assert doc is None
    [problem] = problems
    assert problem.file == "stacks/x.yaml"
    assert "nest" in problem.message


def test_nesting_up_to_the_bound_loads() -> None:
    depth = yamlsource.MAX_DEPTH - 1
    doc, problems = load("a: " + "[" * depth + "1" + "]" * depth + "\n")
    assert problems == []
    assert doc is not None


def test_a_file_over_the_size_bound_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsource, "MAX_DOCUMENT_BYTES", 1000)
    doc, problems = load("kind: Stack\n" + "# padding\n" * 200)
    assert doc is None
    [problem] = problems
    assert "larger than 1000 bytes" in problem.message
