"""The simulated agent that tests and benchmarks share.

``SimAgent`` behaves like the real agent as far as the controller can tell,
without running hooks: it reads its pointer and manifest, runs what is due
(CREATE, UPDATE, DELETE of what left, SUSPEND/RESUME on a state change, a
custom action per new ``run`` token), remembers what succeeded, and writes the
same report document the real agent writes. Failures and silence are injected
per server, so rollout rules can be checked at every instant; outputs come
from a function of the derived config, so each test chooses values its
``get_attr`` consumers can check.

A long-lived ``SimAgent`` keeps its memory between cycles (``tests/controller/
fleet.py``). ``answer`` is one cycle of an agent that remembers only what its
last report says, for loops that re-create the agent each time (benchmarks).

It lives in ``bench/`` because benchmarks cannot import from ``tests/``,
while tests import ``bench`` already.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from setpoint.store.base import Store
from setpoint.store.documents import DeploymentReport, Manifest, ManifestEntry, Pointer, Report
from setpoint.store.timestamps import format_timestamp

SIM_EPOCH = 1_767_225_600.0
"""2026-01-01T00:00:00Z: the time of an agent given no clock."""

OutputsFor = Callable[[str, str, dict[str, Any]], dict[str, Any]]
"""(server, config digest, derived config body) -> the outputs a successful run reports."""


def outputs_named_for_server(server: str, digest: str, body: dict[str, Any]) -> dict[str, Any]:
    """Each output's value is ``<server>:<output name>``."""
    return {o["name"]: f"{server}:{o['name']}" for o in body["outputs"]}


def input_values(body: dict[str, Any]) -> dict[str, Any]:
    """A derived config's input values by name."""
    return {i["name"]: i["value"] for i in body["inputs"]}


@dataclass
class SimAgent:
    """One server's agent: what succeeded here, what it ran, in order.

    ``rewrite``: write the report on every cycle (the real agent's heartbeat),
    or only when the pointer's generation is new to it.
    """

    server: str
    store: Store
    clock: Callable[[], float] = lambda: SIM_EPOCH
    outputs_for: OutputsFor = outputs_named_for_server
    heartbeat: float | None = None
    rewrite: bool = True
    fail_versions: set[str] = field(default_factory=set)
    """Runs whose ``version`` input is one of these fail."""
    fail_deployments: Collection[str] = ()
    """Runs of these deployments fail."""
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

    @classmethod
    def resume(cls, store: Store, server: str, **options: Any) -> SimAgent:
        """An agent that knows what its last report in ``store`` says, as the real
        agent knows from its state file after a restart."""
        agent = cls(server, store, **options)
        previous = store.read_report(server)
        if previous is None:
            return agent
        agent.generation = previous.generation
        for name, dep in previous.deployments.items():
            agent.reports[name] = dep
            agent.states[name] = dep.state
            if dep.token is not None:
                agent.tokens[name] = dep.token
            if dep.status == "COMPLETE":
                agent.succeeded[name] = dep.config
                agent.outputs[name] = dict(dep.outputs)
        return agent

    def _fails(self, entry: ManifestEntry, inputs: dict[str, Any]) -> bool:
        return entry.name in self.fail_deployments or inputs.get("version") in self.fail_versions

    def _report(self, entry: ManifestEntry, action: str, ok: bool, token: str | None) -> None:
        self.ran.append((action, entry.name, entry.config))
        self.reports[entry.name] = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action=action,
            status="COMPLETE" if ok else "FAILED",
            outputs=self.outputs.get(entry.name, {}) if ok else {},
            final=True,
            reason=None if ok else "failed",
            state=self.states.get(entry.name, "active"),
            token=token if token is not None else self.tokens.get(entry.name),
        )

    def cycle(self) -> bool:
        """Run what the pointer asks and report; False when there is no pointer (or
        the agent is silent)."""
        if self.silent:
            return False
        pointer = self.store.read_pointer(self.server)
        if pointer is None:
            return False
        if not self.rewrite and pointer.generation == self.generation:
            return True
        manifest = Manifest.from_dict(self.store.get_json_blob(pointer.manifest))
        self.generation = pointer.generation
        for entry in manifest.deployments:
            self._apply(entry)
        self._delete_gone(manifest)
        self.write(pointer)
        return True

    def _apply(self, entry: ManifestEntry) -> None:
        """Run what one manifest entry asks: its config, a state change, an action."""
        self.entries[entry.name] = entry
        if self._given_up(entry):
            return  # final: the agent tries again only when told (retry count)
        if self._config_due(entry) and not self._run_config(entry):
            return
        self._change_state(entry)
        self._run_action(entry)

    def _given_up(self, entry: ManifestEntry) -> bool:
        """The entry's config failed here and no retry was asked since."""
        previous = self.reports.get(entry.name)
        return (
            previous is not None
            and (previous.config, previous.status) == (entry.config, "FAILED")
            and previous.action in ("CREATE", "UPDATE")
            and self.retried.get(entry.name, 0) == entry.retry
        )

    def _config_due(self, entry: ManifestEntry) -> bool:
        """The entry's config has not succeeded here, or is a rollback to one that did."""
        previous = self.reports.get(entry.name)
        # A rollback to a digest that succeeded here reruns its UPDATE, as the
        # real agent does: the failed run may have left the server half changed.
        rolled_back = previous is not None and previous.config != entry.config
        return self.succeeded.get(entry.name) != entry.config or rolled_back

    def _run_config(self, entry: ManifestEntry) -> bool:
        """CREATE or UPDATE the entry's config; False when the run failed."""
        action = "UPDATE" if entry.name in self.succeeded else "CREATE"
        body = self.store.get_json_blob(entry.config)
        ok = not self._fails(entry, input_values(body))
        if ok:
            self.succeeded[entry.name] = entry.config
            if self.echo_inputs:
                value = entry.config[-8:]
                self.outputs[entry.name] = {o["name"]: value for o in body["outputs"]}
            else:
                self.outputs[entry.name] = self.outputs_for(self.server, entry.config, body)
        self._report(entry, action, ok, None)
        if not ok:
            self.retried[entry.name] = entry.retry
        return ok

    def _change_state(self, entry: ManifestEntry) -> None:
        """SUSPEND or RESUME when the entry's state differs from the one here."""
        if self.states.get(entry.name, "active") != entry.state:
            action = "SUSPEND" if entry.state == "suspended" else "RESUME"
            self.states[entry.name] = entry.state
            self._report(entry, action, True, None)

    def _run_action(self, entry: ManifestEntry) -> None:
        """Run the entry's custom action when its token is new here."""
        if entry.run is not None and self.tokens.get(entry.name) != entry.run[1]:
            action, token = entry.run
            ok = action not in self.fail_actions
            if ok:
                self.tokens[entry.name] = token
            self._report(entry, action, ok, token)

    def _delete_gone(self, manifest: Manifest) -> None:
        """DELETE every deployment that succeeded here and left the manifest."""
        present = {e.name for e in manifest.deployments}
        for name in [n for n in self.succeeded if n not in present]:
            self.ran.append(("DELETE", name, self.succeeded[name]))
            del self.succeeded[name]
            self.reports.pop(name, None)

    def write(self, pointer: Pointer | None = None) -> None:
        """Write the report (for the pointer now in the store unless given one)."""
        if pointer is None:
            pointer = self.store.read_pointer(self.server)
        self.store.write_report(
            Report(
                server=self.server,
                generation=pointer.generation if pointer else 0,
                manifest=pointer.manifest if pointer else None,
                updated_at=format_timestamp(self.clock()),
                deployments=dict(self.reports),
                heartbeat=self.heartbeat,
            )
        )


def answer(store: Store, server: str, **options: Any) -> bool:
    """One cycle of the server's agent, remembering only its last report in ``store``;
    it writes only for a new generation. False when there is no pointer."""
    return SimAgent.resume(store, server, rewrite=False, **options).cycle()
