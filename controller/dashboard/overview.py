"""The fleet overview: per stack and deployment, how many servers are in each state.

Computed from one snapshot (the statuses ``setpoint status`` reads and the
controller's ledger) in one walk over it, so that 10,000 servers cost a few
milliseconds (``bench/dashboard.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from setpoint.controller.converge.status import DeploymentStatus, ServerStatus
from setpoint.controller.dashboard.snapshot import Snapshot
from setpoint.controller.rollout.ledger import Ledger, Rollout

# A (deployment, server) pair's state on the dashboard, worst first: a pair is
# counted under the first of these that holds.
UNREACHABLE = "unreachable"
QUARANTINED = "quarantined"
FAILED = "failed"
WAITING = "waiting"
IN_PROGRESS = "in progress"
CONVERGED = "converged"
STATES = (CONVERGED, IN_PROGRESS, WAITING, FAILED, QUARANTINED, UNREACHABLE)
# The states a person must look at; the others resolve by themselves.
TROUBLE = frozenset({UNREACHABLE, QUARANTINED, FAILED})


def pair_state(server: ServerStatus, dep: DeploymentStatus | None, waits: str | None) -> str:
    """The dashboard state of one deployment on one server (``dep`` None: not
    published there yet; ``waits``: why the controller holds it back)."""
    if server.agent == "unreachable":
        return UNREACHABLE
    if dep is not None and dep.status in ("FAILED (quarantined)", "FAILED (timeout)"):
        return QUARANTINED
    if dep is not None and dep.failed:
        return FAILED
    if waits is not None:
        return WAITING
    if dep is not None and dep.status == "COMPLETE":
        return CONVERGED
    return IN_PROGRESS


def waits(ledger: Ledger) -> dict[tuple[str, str], str]:
    """(deployment, server) -> why it waits: the controller's waits, and the
    servers a rollout has not reached yet."""
    out: dict[tuple[str, str], str] = {}
    for name, rollout in ledger.rollouts.items():
        if rollout.outcome != "rolling":
            continue
        p = rollout.progress
        following = f"batch {int(p.get('batch', 0)) + 1} of {p.get('batches', 0)}"
        for server in p.get("waiting") or []:
            out[(name, str(server))] = following
    for w in ledger.waiting:
        out[(str(w.get("deployment")), str(w.get("server")))] = str(w.get("reason"))
    return out


@dataclass
class DeploymentRow:
    """One deployment across the fleet."""

    name: str
    counts: Counter[str] = field(default_factory=Counter)
    # Why servers wait, and how many wait for each reason.
    waiting_on: Counter[str] = field(default_factory=Counter)
    rollout: Rollout | None = None
    # commit -> how many of its servers' pointers name it
    commits: Counter[str] = field(default_factory=Counter)

    @property
    def stack(self) -> str:
        return self.name.split("/", 1)[0] if "/" in self.name else "-"

    @property
    def short_name(self) -> str:
        return self.name.split("/", 1)[-1]

    @property
    def servers(self) -> int:
        return sum(self.counts.values())

    @property
    def troubled(self) -> bool:
        return any(self.counts[s] for s in TROUBLE)


@dataclass
class Overview:
    rows: list[DeploymentRow]
    # server -> the worst state of its deployments ("no deployments": none)
    server_states: dict[str, str]
    # commit -> how many servers' pointers name it
    commits: Counter[str]
    deployed: str | None
    rollouts: list[Rollout]
    agents: Counter[str]
    servers: int

    def servers_in(self, wanted: frozenset[str] | None) -> list[tuple[str, str]]:
        """(server, state) of the servers in one of the ``wanted`` states (None:
        all), worst first, then by name."""
        found = [
            (server, state)
            for server, state in self.server_states.items()
            if wanted is None or state in wanted
        ]
        rank = {state: i for i, state in enumerate(reversed(STATES))}
        return sorted(found, key=lambda t: (rank.get(t[1], len(rank)), t[0]))

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for row in self.rows:
            total.update(row.counts)
        return total


NO_DEPLOYMENTS = "no deployments"


def worst(states: set[str]) -> str:
    for state in reversed(STATES):
        if state in states:
            return state
    return NO_DEPLOYMENTS


def overview(snapshot: Snapshot) -> Overview:
    """Every deployment's counts, in one walk over the snapshot (once per snapshot)."""
    return snapshot.once("overview", lambda: _overview(snapshot))


def held_back(snapshot: Snapshot) -> dict[tuple[str, str], str]:
    """``waits`` of the snapshot's ledger, once per snapshot."""
    return snapshot.once("waits", lambda: waits(snapshot.ledger))


def _overview(snapshot: Snapshot) -> Overview:
    held = held_back(snapshot)
    held_here: dict[str, list[tuple[str, str]]] = {}
    for (name, server_name), why in held.items():
        held_here.setdefault(server_name, []).append((name, why))
    rows: dict[str, DeploymentRow] = {}
    server_states: dict[str, str] = {}
    agents: Counter[str] = Counter()
    for server in snapshot.statuses:
        agents[server.agent] += 1
        commit = server.pointer.commit if server.pointer is not None else None
        seen: set[str] = set()
        states: set[str] = set()
        for dep in server.deployments:
            seen.add(dep.name)
            held_for = held.get((dep.name, server.server))
            state = pair_state(server, dep, held_for)
            states.add(_count(rows, dep.name, state, held_for, commit))
        for name, on in held_here.get(server.server, ()):
            if name not in seen:  # held back before its first publication here
                states.add(_count(rows, name, pair_state(server, None, on), on, commit))
        if server.agent == "unreachable":
            states.add(UNREACHABLE)
        server_states[server.server] = worst(states)
    for name, rollout in snapshot.ledger.rollouts.items():
        rows.setdefault(name, DeploymentRow(name)).rollout = rollout
    return Overview(
        rows=[rows[n] for n in sorted(rows)],
        server_states=server_states,
        commits=snapshot.deployed.commits,
        deployed=snapshot.deployed_commit,
        rollouts=[r for _, r in sorted(snapshot.ledger.rollouts.items())],
        agents=agents,
        servers=len(snapshot.statuses),
    )


def _count(
    rows: dict[str, DeploymentRow], name: str, state: str, why: str | None, commit: str | None
) -> str:
    row = rows.get(name)
    if row is None:
        row = rows[name] = DeploymentRow(name)
    row.counts[state] += 1
    if commit is not None:
        row.commits[commit] += 1
    if state == WAITING and why is not None:
        row.waiting_on[why] += 1
    return state
