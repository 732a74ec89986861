"""Declared contextualization cycles: dependency cycles whose deployments all
say ``converge: true``. They are allowed (``rollout.contextualize`` runs them
in rounds); every other cycle is a problem the ordering names.

A deployment that reads its own output (a cluster's members, each needing
every member's address over their group) is a cycle of one.
"""

from __future__ import annotations


def declared_cycles(
    deps: dict[str, list[str]], converging: set[str]
) -> tuple[list[tuple[str, ...]], dict[str, list[str]]]:
    """The cycles whose members all say ``converge: true``, and the graph to order by.

    Each declared cycle (a strongly connected component) loses its inner
    edges, and every member takes on the outer upstreams of all the others, so
    that ordering puts every outside producer before the first member.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in deps.get(v, []):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    for v in deps:
        if v not in index:
            connect(v)
    cycles = [
        tuple(sorted(c))
        for c in components
        if (len(c) > 1 or c[0] in deps.get(c[0], [])) and all(m in converging for m in c)
    ]
    graph = {q: list(u) for q, u in deps.items()}
    for cycle in cycles:
        members = set(cycle)
        outer = sorted({u for m in cycle for u in deps[m] if u not in members})
        for m in cycle:
            graph[m] = outer
    return sorted(cycles), graph
