"""A cluster of N members reading each other's addresses: bring-up, a join, a leave.

One deployment on a group reads its own ``addr`` over the group (a declared
contextualization cycle of one), rolled out one member at a time
(``update_policy: {max_batch_size: 1}``). Simulated agents answer every pass
on a memory store; the figures are what each change costs: rounds, passes,
runs, and the controller's CPU time per pass (the store is in memory, and CPU
time, unlike wall time, does not move with the machine's load). A pass
renders the whole cycle, a map of N entries, up to three times while a round
is in progress.

    .venv/bin/python -m bench.cluster --members 10,100,300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.simulate import SimAgent
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.store.memory import MemoryStore

COMPONENT = """\
kind: Component
inputs:
  - {name: PEERS, type: Json, default: {}}
outputs:
  - name: addr
configs:
  - {tool: script, actions: [CREATE, UPDATE], config: "#!/bin/sh\\n"}
"""

STACK = """\
kind: Stack
deployments:
  member:
    component: member
    servers: {group: cluster}
    converge: true
    update_policy: {max_batch_size: 1}
    input_values: {PEERS: {get_attr: [member, addr]}}
"""


def inventory(members: list[str]) -> str:
    servers = "".join(f"  {m}: {{}}\n" for m in members)
    return f"kind: Inventory\nservers:\n{servers}groups:\n  cluster: [{', '.join(members)}]\n"


def addr(server: str, _digest: str, _body: dict[str, Any]) -> dict[str, Any]:
    return {"addr": f"10.0.{server[1:]}"}


def run(members: int, root: Path) -> list[dict[str, Any]]:
    names = [f"m{i}" for i in range(1, members + 2)]
    src = root / "src"
    (src / "components/member").mkdir(parents=True)
    (src / "stacks").mkdir()
    (src / "components/member/component.yaml").write_text(COMPONENT)
    (src / "stacks/cluster.yaml").write_text(STACK)
    (src / "inventory.yaml").write_text(inventory(names[:members]))
    init_repo_from_dir(src, root / "repo", "bring-up")
    store = MemoryStore("cluster")
    agents = {n: SimAgent(n, store, outputs_for=addr) for n in names}
    rows = []
    with GitRepo.open(root / "repo") as repo:
        reconciler = Reconciler(repo, store)
        for phase, group in (
            ("bring-up", names[:members]),
            ("join", names),
            ("leave", names[1:]),
        ):
            if phase != "bring-up":
                (root / "repo/inventory.yaml").write_text(inventory(group))
                commit_all(root / "repo", phase)
            ran_before = sum(len(a.ran) for a in agents.values())
            passes, seconds = 0, 0.0
            while True:
                started = time.process_time()
                outcome = reconciler.run_pass()
                seconds += time.process_time() - started
                passes += 1
                if outcome.converged or passes > 10 * members + 20:
                    break
                for agent in agents.values():
                    agent.cycle()
            (record,) = read_ledger(store).cycles.values()
            runs = sum(len(a.ran) for a in agents.values()) - ran_before
            rows.append(
                {
                    "members": len(group),
                    "phase": phase,
                    "converged": outcome.converged,
                    "rounds": record["round"],
                    "passes": passes,
                    "runs": runs,
                    "cpu_ms_per_pass": 1000 * seconds / passes,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="10,100", help="cluster sizes, comma-separated")
    args = parser.parse_args()
    print("| members | change | converged | rounds | passes | runs | CPU ms per pass |")
    print("|---|---|---|---|---|---|---|")
    for size in (int(n) for n in args.members.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            for r in run(size, Path(tmp)):
                print(
                    f"| {r['members']} | {r['phase']} | {r['converged']} | {r['rounds']} | "
                    f"{r['passes']} | {r['runs']} | {r['cpu_ms_per_pass']:.1f} |"
                )


if __name__ == "__main__":
    main()
