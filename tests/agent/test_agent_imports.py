"""The agent's modules import each other without cycles; a package counts as one module.

A cycle (as ``hooks`` importing ``tools`` while the tools imported ``hooks``)
makes the import order matter and the parts impossible to read or test alone.
Every import counts, including those only for type checking or inside a
function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import setpoint.agentshim

PACKAGE = "setpoint.agentshim"


def unit(root: Path, path: Path) -> str:
    """The module's name under the agent package, a subpackage counting as one."""
    parts = path.relative_to(root).with_suffix("").parts
    return parts[0]


def imported_units(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            modules = [node.module]
            if node.module == PACKAGE:
                modules = [f"{PACKAGE}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            if module.startswith(PACKAGE + "."):
                names.add(module.removeprefix(PACKAGE + ".").split(".")[0])
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        source = unit(root, path)
        targets = imported_units(ast.parse(path.read_text(), str(path)))
        graph.setdefault(source, set()).update(targets - {source})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*trail, node])
            if cycle is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle is not None:
            return cycle
    return None


def test_a_cycle_is_found() -> None:
    assert find_cycle({"hooks": {"tools"}, "tools": {"contract", "hooks"}}) == [
        "hooks",
        "tools",
        "hooks",
    ]
    assert find_cycle({"hooks": {"contract", "tools"}, "tools": {"contract"}}) is None


def test_the_agent_s_modules_import_each_other_without_cycles() -> None:
    root = Path(setpoint.agentshim.__file__).parent
    graph = import_graph(root)
    assert {"agent", "hooks", "tools"} <= set(graph)
    assert find_cycle(graph) is None
