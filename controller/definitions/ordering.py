"""The order deployments are rendered in: dependencies first; a dependency
cycle is a problem naming every step of it, unless every member declares it
with ``converge: true``."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.cycles import declared_cycles
from setpoint.controller.definitions.model import Deployment, Stack
from setpoint.controller.definitions.references import find_deployment


def _earliest_ready_first(deps: dict[str, list[str]], position: dict[str, int]) -> tuple[str, ...]:
    """Every deployment after what it depends on; otherwise in ``position``
    order: the earliest one whose dependencies are placed goes next, so a
    dependency never pulls a later deployment ahead of earlier ones (Heat runs
    a server's deployments in order as they become ready)."""
    waiting_on = {q: len(set(up)) for q, up in deps.items()}
    downstream: dict[str, list[str]] = {q: [] for q in deps}
    for q, up in deps.items():
        for u in set(up):
            downstream[u].append(q)
    ready = [(position[q], q) for q, n in waiting_on.items() if n == 0]
    heapq.heapify(ready)
    done: list[str] = []
    while ready:
        _, q = heapq.heappop(ready)
        done.append(q)
        for d in downstream[q]:
            waiting_on[d] -= 1
            if waiting_on[d] == 0:
                heapq.heappush(ready, (position[d], d))
    return tuple(done)


def _lookup(stacks: dict[str, Stack], qualified: str) -> Deployment:
    stack, _, name = qualified.partition("/")
    return stacks[stack].deployments[name]


@dataclass
class Ordering:
    """Dependencies first, for the stacks of one commit."""

    checks: Checks
    stacks: dict[str, Stack]
    # Declared contextualization cycles, found while ordering.
    cycles: list[tuple[str, ...]] = field(default_factory=list)
    _done: list[str] = field(default_factory=list)
    _state: dict[str, int] = field(default_factory=dict)  # 1 visiting, 2 done

    def order(self) -> tuple[str, ...]:
        """Every deployment, each after what it depends on."""
        stacks = self.stacks
        deps = {
            d.qualified: sorted(u for u in d.upstreams() if find_deployment(stacks, u) is not None)
            for s in stacks.values()
            for d in s.deployments.values()
        }
        # Cycles declared with ``converge: true`` on every member are allowed.
        converging = {
            d.qualified for s in stacks.values() for d in s.deployments.values() if d.converge
        }
        self.cycles, deps = declared_cycles(deps, converging)
        self._check_declared(converging)
        position = {q: i for i, q in enumerate(deps)}
        for q in deps:
            self._visit(q, [], deps, position)
        ordered = _earliest_ready_first(deps, position)
        # A cycle (reported above, or declared) leaves some never ready.
        return ordered if len(ordered) == len(deps) else tuple(self._done)

    def _check_declared(self, converging: set[str]) -> None:
        """``converge: true`` only on members of a declared cycle."""
        in_cycles = {m for c in self.cycles for m in c}
        for q in sorted(converging - in_cycles):
            dep = _lookup(self.stacks, q)
            self.checks.error(
                Where(dep.file, dep.line, f"deployments.{dep.name}.converge"),
                f"converge: true, but {q} is in no dependency cycle whose deployments all "
                "say converge: true",
            )

    def _visit(
        self, q: str, trail: list[str], deps: dict[str, list[str]], position: dict[str, int]
    ) -> None:
        if self._state.get(q) == 2:
            return
        if self._state.get(q) == 1:
            cycle = [*trail[trail.index(q) :], q]
            dep = _lookup(self.stacks, q)
            message = "dependency cycle: " + " -> ".join(cycle)
            if cycle == [q, q] and any(r.deployment == q for r in dep.attr_refs()):
                # A cluster reading its own members' facts: say how to declare it.
                message += " (it reads its own output); say converge: true to converge it in rounds"
            self.checks.error(Where(dep.file, dep.line, f"deployments.{dep.name}"), message)
            return
        self._state[q] = 1
        for u in sorted(deps[q], key=position.__getitem__):
            self._visit(u, [*trail, q], deps, position)
        self._state[q] = 2
        self._done.append(q)
