"""A simulated fleet: dozens of in-process agents against a memory store.

Each ``SimAgent`` behaves like the real agent as far as the controller can
tell: it reads its pointer and manifest, runs what is due (CREATE, UPDATE,
DELETE of what left, SUSPEND/RESUME on a state change, a custom action per new
``run`` token), remembers what succeeded, and reports. Failures and silence
are injected per server, so rollout rules can be checked at every instant.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.controller.converge.reconcile import PassOutcome, Reconciler
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.store.documents import DeploymentReport, Manifest, ManifestEntry, Report
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


@dataclass
class SimAgent:
    """One server's agent: what succeeded here, what it ran, in order."""

    server: str
    store: MemoryStore
    clock: Callable[[], float]
    heartbeat: float | None = None
    fail_versions: set[str] = field(default_factory=set)
    fail_actions: set[str] = field(default_factory=set)
    silent: bool = False
    # Outputs that change whenever any input does (an oscillating cycle).
    echo_inputs: bool = False
    succeeded: dict[str, str] = field(default_factory=dict)  # deployment -> digest
    states: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    entries: dict[str, ManifestEntry] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, DeploymentReport] = field(default_factory=dict)
    ran: list[tuple[str, str, str]] = field(default_factory=list)  # (action, name, digest)
    retried: dict[str, int] = field(default_factory=dict)
    generation: int = 0

    def _report(self, entry: ManifestEntry, action: str, ok: bool, token: str | None) -> None:
        self.ran.append((action, entry.name, entry.config))
        self.reports[entry.name] = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action=action,
            status="COMPLETE" if ok else "FAILED",
            outputs=self.outputs.get(entry.name, {}) if ok else {},
            final=True,
            reason=None if ok else f"{action} failed",
            state=self.states.get(entry.name, "active"),
            token=token if token is not None else self.tokens.get(entry.name),
        )

    def cycle(self) -> None:
        if self.silent:
            return
        pointer = self.store.read_pointer(self.server)
        if pointer is None:
            return
        manifest = Manifest.from_dict(self.store.get_json_blob(pointer.manifest))
        self.generation = pointer.generation
        for entry in manifest.deployments:
            self.entries[entry.name] = entry
            previous = self.reports.get(entry.name)
            if (
                previous is not None
                and (previous.config, previous.status) == (entry.config, "FAILED")
                and previous.action in ("CREATE", "UPDATE")
                and self.retried.get(entry.name, 0) == entry.retry
            ):
                continue  # final: the agent tries again only when told (retry count)
            # A rollback to a digest that succeeded here reruns its UPDATE, as the
            # real agent does: the failed run may have left the server half changed.
            rolled_back = previous is not None and previous.config != entry.config
            if self.succeeded.get(entry.name) != entry.config or rolled_back:
                action = "UPDATE" if entry.name in self.succeeded else "CREATE"
                body = self.store.get_json_blob(entry.config)
                inputs = {i["name"]: i["value"] for i in body["inputs"]}
                ok = inputs.get("version") not in self.fail_versions
                if ok:
                    self.succeeded[entry.name] = entry.config
                    value = f"{self.server}:{inputs.get('version')}"
                    if self.echo_inputs:
                        value = entry.config[-8:]
                    self.outputs[entry.name] = {o["name"]: value for o in body["outputs"]}
                self._report(entry, action, ok, None)
                if not ok:
                    self.retried[entry.name] = entry.retry
                    continue
            if self.states.get(entry.name, "active") != entry.state:
                action = "SUSPEND" if entry.state == "suspended" else "RESUME"
                self.states[entry.name] = entry.state
                self._report(entry, action, True, None)
            if entry.run is not None and self.tokens.get(entry.name) != entry.run[1]:
                action, token = entry.run
                ok = action not in self.fail_actions
                if ok:
                    self.tokens[entry.name] = token
                self._report(entry, action, ok, token)
        present = {e.name for e in manifest.deployments}
        for name in [n for n in self.succeeded if n not in present]:
            self.ran.append(("DELETE", name, self.succeeded[name]))
            del self.succeeded[name]
            self.reports.pop(name, None)
        self.write()

    def write(self) -> None:
        pointer = self.store.read_pointer(self.server)
        self.store.write_report(
            Report(
                server=self.server,
                generation=pointer.generation if pointer else 0,
                manifest=pointer.manifest if pointer else None,
                updated_at=_iso(self.clock()),
                deployments=dict(self.reports),
                heartbeat=self.heartbeat,
            )
        )


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


class Fleet:
    """A definitions repository, a store, a reconciler and one agent per server."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.now = T0
        self.src = root / "src"
        for rel, text in files.items():
            path = self.src / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.repo_path = root / "repo"
        init_repo_from_dir(self.src, self.repo_path, "initial")
        self.repo = GitRepo.open(self.repo_path)
        self.store = MemoryStore("fleet")
        self.reconciler = Reconciler(self.repo, self.store, clock=self.clock)
        self.agents: dict[str, SimAgent] = {}

    def clock(self) -> float:
        return self.now

    def agent(self, server: str) -> SimAgent:
        if server not in self.agents:
            self.agents[server] = SimAgent(server, self.store, self.clock)
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
