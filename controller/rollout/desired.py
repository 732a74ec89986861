"""Desired state: what each server should run now, given what agents reported.

For every deployment (dependencies first) and every server it targets, the
deployment is either *ready* (every output it reads was reported COMPLETE by
the upstream's current config, every ``depends_on`` is COMPLETE on all its
servers) and rendered, or *waiting*, with the reason. A waiting deployment
keeps whatever entry the server was already given, so waiting never deletes
anything; one never given before is simply not published yet.

This is a pure function of (model, reports, previously published manifests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from setpoint.controller.definitions.model import Component, Deployment, Model
from setpoint.controller.render.derived import RenderCache, RenderedConfig
from setpoint.controller.rollout.contextualize import Rounds
from setpoint.controller.rollout.gate import Gate
from setpoint.controller.rollout.inputs import InputResolver, Wait, Waiting, reported
from setpoint.store.digest import digest_json, hex_of
from setpoint.store.documents import Manifest, ManifestEntry, Report

__all__ = ["DesiredState", "Waiting", "compute_desired", "entry_of"]


@dataclass
class DesiredState:
    commit: str
    manifests: dict[str, Manifest] = field(default_factory=dict)
    configs: dict[str, RenderedConfig] = field(default_factory=dict)
    # Content of every file and zip blob a config may reference, by digest.
    attachments: dict[str, bytes] = field(default_factory=dict)
    # The freshly rendered digest of each (deployment, server) that is ready.
    rendered: dict[tuple[str, str], str] = field(default_factory=dict)
    # The manifest name of each rendered (deployment, server): its instance.
    instances: dict[tuple[str, str], str] = field(default_factory=dict)
    waiting: list[Waiting] = field(default_factory=list)
    # Rollouts stopped by a failure this pass (halted or rolled back), as text.
    failures: list[str] = field(default_factory=list)
    # Rollouts that went on without the servers whose preflight failed (``min_pass``).
    left_out: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing waits: the manifests are the commit's whole intent."""
        return not self.waiting


def instance_name(dep: Deployment, component: Component, values: dict[str, Any]) -> str:
    """The manifest name of a deployment's instance.

    A deployment whose component has ``replace_on_change`` inputs is named by
    those inputs' values (``<stack>/<deployment>@<8 hex>``): a change of them
    is a new instance, created next to the old one, which is deleted once the
    new one succeeded (create before delete).
    """
    replacing = {
        i.name: values.get(i.name, i.default) for i in component.inputs if i.replace_on_change
    }
    if not replacing:
        return dep.qualified
    return f"{dep.qualified}@{hex_of(digest_json(replacing))[:8]}"


def entry_of(manifest: Manifest | None, qualified: str) -> ManifestEntry | None:
    """The entry of ``qualified`` in ``manifest``: its newest instance (listed last)."""
    if manifest is None:
        return None
    found = [e for e in manifest.deployments if e.qualified == qualified]
    return found[-1] if found else None


def _older_instances(manifest: Manifest | None, entry: ManifestEntry) -> list[ManifestEntry]:
    if manifest is None:
        return []
    return [
        e for e in manifest.deployments if e.qualified == entry.qualified and e.name != entry.name
    ]


def correction(dep: Deployment, entry: ManifestEntry, report: Report | None) -> ManifestEntry:
    """``on_drift: correct``: the entry asks the agent to run UPDATE of the digest
    it applied once more, once per drift it reported (the token names the digest
    and the drift's count). The entry changes, so the gate admits it in batches
    like any other change. A deployment's own ``run`` request comes first."""
    if dep.on_drift != "correct" or entry.run is not None or "UPDATE" not in entry.actions:
        return entry
    if report is None:
        return entry
    found = report.drift.get(entry.name)
    if found is None or found.config != entry.config or not found.count:
        return entry
    return replace(entry, run=("UPDATE", f"drift-{hex_of(entry.config)[:12]}-{found.count}"))


def compute_desired(
    model: Model,
    reports: dict[str, Report],
    previous: Callable[[str], Manifest | None],
    cache: RenderCache | None = None,
    gate: Gate | None = None,
    rounds: Rounds | None = None,
) -> DesiredState:
    """Every server's manifest for ``model``, given the ``reports`` so far.

    ``previous(server)`` returns the manifest the server was last given (read
    lazily). ``gate`` decides which changed entries are published on this pass
    (batches, failures); without one, every change is published at once.
    ``rounds`` counts the rounds of declared contextualization cycles; without
    it, each pass publishes the cycle's renders as they are.
    """
    run = _DesiredPass(model, reports, previous, cache or RenderCache(), gate, rounds)
    for dep in model.deployments():  # dependencies first
        run.hold_cycle_round(dep)
        targets = run.render_ready_pairs(dep)
        chosen, extra = run.gate_changes(dep, targets)
        run.place_entries(dep, targets, chosen, extra)
    return run.assemble_manifests()


class _DesiredPass:
    """The state of one ``compute_desired`` pass, deployment by deployment."""

    def __init__(
        self,
        model: Model,
        reports: dict[str, Report],
        previous: Callable[[str], Manifest | None],
        cache: RenderCache,
        gate: Gate | None,
        rounds: Rounds | None,
    ) -> None:
        self.model = model
        self.reports = reports
        self.previous = previous
        self.cache = cache
        self.gate = gate
        self.rounds = rounds
        self.state = state = DesiredState(commit=model.commit)
        self.resolver = InputResolver(model, reports, state.rendered, state.instances)
        self.entries: dict[str, list[ManifestEntry]] = {
            s: [] for s in sorted(model.servers_in_use())
        }
        self.bundles: dict[str, dict[str, str]] = {s: {} for s in self.entries}
        # The entries each server checks before it is given them (``preflight``).
        self.preflight: dict[str, list[ManifestEntry]] = {s: [] for s in self.entries}
        self.previous_cache: dict[str, Manifest | None] = {}
        # A deployment's inputs do not depend on the server it is rendered for
        # (the server only appears in Waiting): resolved and rendered once per
        # deployment while its servers are walked, not once per server.
        self.memo: dict[str, ManifestEntry | Waiting] = {}
        # (deployment, server) of a declared cycle held back this pass, and why.
        self.held: dict[tuple[str, str], str] = {}
        self.decided: set[tuple[str, ...]] = set()

    def prior(self, server: str) -> Manifest | None:
        """The manifest ``server`` was last given, read once."""
        if server not in self.previous_cache:
            self.previous_cache[server] = self.previous(server)
        return self.previous_cache[server]

    def render(self, dep: Deployment, server: str) -> ManifestEntry | Waiting:
        """The entry of ``dep`` on ``server`` when ready (recorded as rendered), else
        why it waits."""
        qualified = dep.qualified
        got = self.memo.get(qualified)
        if got is None:
            got = self.memo[qualified] = self.render_deployment(dep, server)
        if isinstance(got, Waiting):
            if got.server == server:
                return got
            # Waiting(...) rather than dataclasses.replace: this runs once per pair.
            return Waiting(
                got.deployment, server, got.upstream, got.upstream_server, got.output, got.reason
            )
        key = (qualified, server)
        self.state.rendered[key] = got.config
        self.state.instances[key] = got.name
        return got

    def render_deployment(self, dep: Deployment, server: str) -> ManifestEntry | Waiting:
        """Resolve ``dep``'s inputs and render its config (its attachments kept)."""
        state = self.state
        component = self.model.components[dep.component]
        try:
            values = self.resolver.inputs(dep, server)
        except Wait as waiting:
            return waiting.waiting
        rendered = self.cache.render(component, values)
        state.configs[rendered.digest] = rendered
        for attached in component.files:
            state.attachments[attached.zip_digest or attached.digest] = attached.content
        return ManifestEntry(
            name=instance_name(dep, component, values),
            config=rendered.digest,
            actions=dep.actions,
            timeout=dep.timeout or component.timeout,
            state=dep.state,
            run=(dep.run.action, dep.run.token) if dep.run else None,
            no_signal=dep.no_signal,
        )

    def hold_cycle_round(self, dep: Deployment) -> None:
        """At the first member of a declared cycle: render the whole cycle and let
        ``rounds`` decide whether this round goes out; if not, hold its pairs."""
        self.memo.clear()
        model = self.model
        cycle = model.cycle_of(dep.qualified)
        if cycle is None or self.rounds is None or cycle in self.decided:
            return
        # The whole cycle is rendered before its first member is placed:
        # a round goes out (or not) as one.
        self.decided.add(cycle)
        self.resolver.last_known.update(self.rounds.known_outputs(cycle))
        fresh = self.render_cycle(cycle)
        verdict = self.rounds.decide(cycle, fresh)
        if verdict.failure is not None:
            self.state.failures.append(verdict.failure)
        if verdict.publish:
            return
        if verdict.started_from is not None:
            # Rendered from the outputs the round started from, its members keep
            # rolling out batch by batch even when a finished batch's outputs changed.
            self.resolver.round_outputs.update(verdict.started_from)
            self.resolver.in_round.update(cycle)
            if self.render_cycle(cycle) == verdict.digests:
                return
            self.resolver.in_round.difference_update(cycle)  # not this round's: hold
            fresh = self.render_cycle(cycle)
        for key in fresh:
            member, server = key.split("|", 1)
            self.held[(member, server)] = verdict.reason

    def render_cycle(self, cycle: tuple[str, ...]) -> dict[str, str]:
        """The digest of every ready pair of the cycle's members, ``"dep|server"``."""
        fresh: dict[str, str] = {}
        for member in cycle:
            self.memo.clear()
            for server in self.model.deployment(member).servers:
                got = self.render(self.model.deployment(member), server)
                if isinstance(got, ManifestEntry):
                    fresh[f"{member}|{server}"] = got.config
        return fresh

    def render_ready_pairs(self, dep: Deployment) -> dict[str, ManifestEntry]:
        """The fresh entry of ``dep`` on each server where it is ready and not
        held; a waiting pair keeps the entries it was given before."""
        self.memo.clear()
        qualified = dep.qualified
        held = self.held
        targets: dict[str, ManifestEntry] = {}
        for server in dep.servers:
            result = self.render(dep, server)
            if held and (qualified, server) in held:
                why = held[(qualified, server)]
                result = Waiting(qualified, server, qualified, None, None, why)
            if isinstance(result, Waiting):
                self.state.waiting.append(result)
                self.keep_waiting_entries(qualified, server)
                continue
            targets[server] = correction(dep, result, self.reports.get(server))
        return targets

    def keep_waiting_entries(self, qualified: str, server: str) -> None:
        """Waiting never deletes: every instance the server was given stays (a
        replacement in flight keeps its old one), with its bundles."""
        manifest = self.prior(server)
        kept = [e for e in (manifest.deployments if manifest else ()) if e.qualified == qualified]
        if kept and manifest is not None:
            self.entries[server] += kept
            self.bundles[server].update(manifest.bundles)

    def gate_changes(
        self, dep: Deployment, targets: dict[str, ManifestEntry]
    ) -> tuple[dict[str, ManifestEntry | None], dict[str, dict[str, str]]]:
        """The entry each server gets this pass (batches, halts, rollbacks), and the
        bundles of entries the gate carried over; every target without a gate.
        The entries servers check first (preflight) are placed here, with the
        bundles their configs need."""
        if self.gate is None:
            return dict(targets), {}
        state = self.state
        qualified = dep.qualified

        def before(server: str) -> tuple[ManifestEntry | None, dict[str, str]]:
            manifest = self.prior(server)
            return entry_of(manifest, qualified), manifest.bundles if manifest else {}

        decision = self.gate.decide(dep, targets, before)
        for server, entry in decision.preflight.items():
            self.preflight[server].append(entry)
            self.add_component_bundles(server, dep)
        state.failures += decision.failures
        state.left_out += decision.left_out
        for server, why in decision.waiting.items():
            state.waiting.append(Waiting(qualified, server, qualified, None, None, why))
        for server, read in decision.reads.items():  # update_order: reverse
            state.rendered[(qualified, server)] = read.config
            state.instances[(qualified, server)] = read.name
        return decision.entries, decision.bundles

    def place_entries(
        self,
        dep: Deployment,
        targets: dict[str, ManifestEntry],
        chosen: dict[str, ManifestEntry | None],
        extra: dict[str, dict[str, str]],
    ) -> None:
        """Put each chosen entry in its server's manifest, with its bundles: the
        component's zips for a fresh render, the carried-over ones otherwise."""
        for server in dep.servers:
            target = targets.get(server)
            if target is None:
                continue
            entry = chosen.get(server)
            if entry is None:
                continue
            if entry is target:
                self.add_component_bundles(server, dep)
            else:
                manifest = self.prior(server)
                self.bundles[server].update(
                    extra.get(server) or (manifest.bundles if manifest else {})
                )
            self.replace_instance(server, entry)

    def add_component_bundles(self, server: str, dep: Deployment) -> None:
        """The zips of the directories ``dep``'s component attaches, in the
        server's manifest: a fresh render of it names them."""
        for attached in self.model.components[dep.component].files:
            if attached.zip_digest is not None:
                self.bundles[server][attached.digest] = attached.zip_digest

    def replace_instance(self, server: str, entry: ManifestEntry) -> None:
        """Add ``entry``; older instances of its deployment stay until it succeeded."""
        older = _older_instances(self.prior(server), entry)
        if older:
            got = reported(self.reports, server, entry.name)
            if got is None or got.config != entry.config or got.status != "COMPLETE":
                # Create before delete: the old instance stays until the new
                # one succeeded; then it leaves the manifest and the agent
                # runs its DELETE.
                self.entries[server] += older
                manifest = self.prior(server)
                self.bundles[server].update(manifest.bundles if manifest else {})
        self.entries[server].append(entry)

    def assemble_manifests(self) -> DesiredState:
        """Every server's manifest, from the entries placed and kept this pass."""
        for server, server_entries in self.entries.items():
            # Bundles come from the components rendered for this server and, for
            # entries kept while waiting, from the manifest they were kept from.
            self.state.manifests[server] = Manifest(
                deployments=tuple(server_entries),
                bundles=self.bundles[server],
                preflight=tuple(self.preflight[server]),
            )
        return self.state
