"""Seeded mutations of real definitions: every one loads or is a list of problems
with file and line, never a crash (what ``setpoint watch`` relies on to skip a
bad head and keep serving the last good one)."""

from __future__ import annotations

import copy
import random
from typing import Any

import yaml

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.errors import InvalidDefinitions, Problem
from tests.controller.conftest import EXAMPLE
from tests.controller.test_loader_robust import HEAT, HEAT_INVENTORY

SEED = 20261202
MUTANTS = 100

# Values of every shape put where another was expected: names, lists, maps,
# functions with arguments of the wrong shape.
ODD: list[Any] = [
    None, 0, -1, 1.5, True, "", "x", "../up", "2001-12-14", [], ["a"], [["a"]], [{"x": 1}],
    {}, {"x": 1}, {"x": [[1]]}, {1: 2}, {"group": "web"}, {"group": {"x": 1}},
    {"get_param": "nope"}, {"get_param": {"x": 1}}, {"get_param": ["settings", {"x": 1}]},
    {"get_param": ["settings", "db", "hosts", 0]}, {"get_param": []},
    {"get_attr": ["backend", "nope"]}, {"get_attr": [{"x": 1}, "y"]}, {"get_attr": []},
    {"get_file": "missing.txt"}, {"get_file": {"x": 1}}, {"get_resource": {"x": 1}},
    {"str_replace": {"template": {"x": 1}, "params": {"a": {"b": 1}}}},
    {"list_join": [{"x": 1}, [{"y": 1}]]}, {"repeat": 1}, ["CREATE", {"x": 1}],
]  # fmt: skip


class MemoryTree:
    """A commit's files in memory (``definitions.files.Tree``)."""

    commit = "0" * 40

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read(self, path: str) -> bytes:
        return self.files[path]

    def kind(self, path: str) -> str | None:
        if path in self.files:
            return "file"
        return "dir" if any(k.startswith(path + "/") for k in self.files) else None

    def listdir(self, path: str) -> list[str]:
        return sorted(
            {k[len(path) + 1 :].split("/")[0] for k in self.files if k.startswith(path + "/")}
        )

    def walk(self, path: str) -> list[tuple[str, int, bytes]]:
        return [
            (k[len(path) + 1 :], 0o644, v)
            for k, v in sorted(self.files.items())
            if k.startswith(path + "/")
        ]

    def mode(self, path: str) -> int:
        return 0o755 if path.endswith(".sh") else 0o644


def bases() -> list[tuple[dict[str, bytes], str | None]]:
    example = {
        str(p.relative_to(EXAMPLE)): p.read_bytes() for p in EXAMPLE.rglob("*") if p.is_file()
    }
    example["environments/prod.yaml"] = (
        b"kind: Environment\ninventory:\n  servers: {db-1: {}, web-1: {}, web-2: {}}\n"
        b"  groups: {web: [web-1, web-2]}\n"
    )
    heat = {"inventory.yaml": HEAT_INVENTORY.encode(), "stacks/h.yaml": HEAT.encode()}
    heat["stacks/h.env.yaml"] = b"parameter_defaults: {}\n"
    return [(example, None), (example, "prod"), (heat, None)]


def places(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at] if at else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += places(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += places(value, (*at, index))
    return out


def mutate(doc: Any, rng: random.Random) -> Any:
    """``doc`` with one value replaced, removed, renamed or moved."""
    doc = copy.deepcopy(doc)
    spots = places(doc)
    if not spots:
        return copy.deepcopy(rng.choice(ODD))
    spot = rng.choice(spots)
    parent = doc
    for key in spot[:-1]:
        parent = parent[key]
    last, roll = spot[-1], rng.random()
    if roll < 0.45:
        parent[last] = copy.deepcopy(rng.choice(ODD))
    elif roll < 0.6:
        del parent[last]
    elif roll < 0.75 and isinstance(parent, dict):
        parent[f"{last}x"] = parent.pop(last)
    elif roll < 0.9:
        source: Any = doc
        for key in rng.choice(spots):
            source = source[key]
        parent[last] = copy.deepcopy(source)
    else:
        parent[last] = str(parent[last])
    return doc


def mutants() -> list[tuple[dict[str, bytes], str | None]]:
    rng = random.Random(SEED)
    out = []
    for _ in range(MUTANTS):
        files, env = rng.choice(bases())
        files = dict(files)
        documents = sorted(k for k in files if k.endswith(".yaml"))
        for _ in range(rng.choice((1, 1, 2))):
            path = rng.choice(documents)
            files[path] = yaml.safe_dump(mutate(yaml.safe_load(files[path]), rng)).encode()
        if rng.random() < 0.1:
            path = rng.choice(documents)
            files[path] = rng.choice((b"", b"x: [\n", files[path] + b"\n  bad: [\n"))
        out.append((files, env))
    return out


def outcome(files: dict[str, bytes], env: str | None) -> list[Problem]:
    """The problems loading ``files`` finds (none when it loads); any other
    exception goes through."""
    try:
        load_model(MemoryTree(files), env=env)
    except InvalidDefinitions as exc:
        return exc.problems
    return []


def test_mutated_definitions_load_or_name_their_problems() -> None:
    loaded = invalid = 0
    for files, env in mutants():
        problems = outcome(files, env)
        loaded += not problems
        invalid += bool(problems)
        for problem in problems:
            assert problem.file in files or problem.file.startswith(
                ("components", "stacks", "environments")
            ), problem
            assert problem.line >= 0
    # Both outcomes happen: the mutations reach past the first check.
    assert loaded > 5
    assert invalid > 5
