"""A simulated fleet: dozens of in-process agents against a memory store.

Each server has a ``bench.simulate.SimAgent`` (the simulated agent tests and
benchmarks share) whose outputs name the server and the ``version`` input.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from bench.simulate import SimAgent, input_values
from setpoint.controller.converge.reconcile import PassOutcome, Reconciler
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.store.base import Store
from setpoint.store.documents import Manifest, ManifestEntry
from setpoint.store.memory import MemoryStore

T0 = 1_700_000_000.0


def component(extra_inputs: str = "", configs: str = "", timeout: int = 60) -> str:
    return textwrap.dedent(
        """\
        kind: Component
        inputs:
          - name: version
            type: String
        {extra}
        outputs:
          - name: addr
        configs:
          - tool: script
            actions: [CREATE, UPDATE, DELETE, SUSPEND, RESUME]
            config: "#!/bin/sh\\n"
        {configs}
        timeout: {timeout}
        """
    ).format(extra=extra_inputs, configs=configs, timeout=timeout)


def inventory(servers: list[str], groups: dict[str, list[str]]) -> str:
    lines = ["kind: Inventory", "servers:"]
    lines += [f"  {s}: {{}}" for s in servers]
    lines.append("groups:")
    lines += [f"  {g}: [{', '.join(m)}]" for g, m in groups.items()]
    return "\n".join(lines) + "\n"


def version_outputs(server: str, digest: str, body: dict[str, Any]) -> dict[str, Any]:
    """Every output is ``<server>:<version input>``: what consumers see changes with it."""
    value = f"{server}:{input_values(body).get('version')}"
    return {o["name"]: value for o in body["outputs"]}


class Fleet:
    """A definitions repository, a store, a reconciler and one agent per server."""

    def __init__(self, root: Path, files: dict[str, str], store: Store | None = None) -> None:
        self.now = T0
        self.src = root / "src"
        for rel, text in files.items():
            path = self.src / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.repo_path = root / "repo"
        init_repo_from_dir(self.src, self.repo_path, "initial")
        self.repo = GitRepo.open(self.repo_path)
        self.store = store if store is not None else MemoryStore("fleet")
        self.reconciler = Reconciler(self.repo, self.store, clock=self.clock)
        self.agents: dict[str, SimAgent] = {}

    def clock(self) -> float:
        return self.now

    def agent(self, server: str) -> SimAgent:
        if server not in self.agents:
            self.agents[server] = SimAgent(
                server, self.store, self.clock, outputs_for=version_outputs
            )
        return self.agents[server]

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        for rel, text in files.items():
            path = self.repo_path / rel
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        return commit_all(self.repo_path, message)

    def run_pass(self) -> PassOutcome:
        return self.reconciler.run_pass()

    def agents_cycle(self, servers: list[str] | None = None) -> None:
        for server in servers if servers is not None else self.store.list_servers():
            self.agent(server).cycle()

    def step(self, advance: float = 1.0) -> PassOutcome:
        """One pass, then every agent one cycle, then the clock moves on."""
        outcome = self.run_pass()
        self.agents_cycle()
        self.now += advance
        return outcome

    def published(self, server: str) -> Manifest:
        pointer = self.store.read_pointer(server)
        assert pointer is not None
        return Manifest.from_dict(self.store.get_json_blob(pointer.manifest))

    def entry(self, server: str, deployment: str) -> ManifestEntry | None:
        for e in self.published(server).deployments:
            if e.qualified == deployment:
                return e
        return None

    def version(self, server: str, deployment: str) -> str | None:
        entry = self.entry(server, deployment)
        if entry is None:
            return None
        body = self.store.get_json_blob(entry.config)
        return str({i["name"]: i["value"] for i in body["inputs"]}["version"])

    def close(self) -> None:
        self.repo.close()
