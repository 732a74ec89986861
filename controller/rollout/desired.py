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
from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.model import Component, Computed, Deployment, GetAttr, Model
from setpoint.controller.definitions.values import coerce
from setpoint.controller.render.derived import RenderCache, RenderedConfig
from setpoint.controller.rollout.contextualize import Rounds
from setpoint.controller.rollout.gate import Gate
from setpoint.store.digest import digest_json, hex_of
from setpoint.store.documents import Manifest, ManifestEntry, Report


@dataclass(frozen=True)
class Waiting:
    """Why ``deployment`` is not (re)published on ``server`` yet."""

    deployment: str
    server: str
    upstream: str
    upstream_server: str | None
    output: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.deployment} on {self.server}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "server": self.server,
            "upstream": self.upstream,
            "upstream_server": self.upstream_server,
            "output": self.output,
            "reason": self.reason,
        }


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

    @property
    def complete(self) -> bool:
        """True when nothing waits: the manifests are the commit's whole intent."""
        return not self.waiting


class _Missing(Exception):
    """An output inside a declared cycle that nobody reported yet."""


class _Wait(Exception):
    def __init__(self, waiting: Waiting) -> None:
        self.waiting = waiting


def _reported(reports: dict[str, Report], server: str, deployment: str) -> Any:
    report = reports.get(server)
    return report.deployments.get(deployment) if report else None


class _Resolver:
    def __init__(self, model: Model, reports: dict[str, Report], state: DesiredState) -> None:
        self.model = model
        self.reports = reports
        self.state = state

    def upstream_complete(
        self, dep: Deployment, server: str, upstream: str, upstream_server: str, output: str | None
    ) -> dict[str, Any]:
        """The upstream's reported outputs on one server, or raise ``_Wait``."""

        def wait(reason: str) -> _Wait:
            return _Wait(Waiting(dep.qualified, server, upstream, upstream_server, output, reason))

        wanted = self.state.rendered.get((upstream, upstream_server))
        what = f"{upstream}" + (f".{output}" if output else "") + f" on {upstream_server}"
        if wanted is None:
            raise wait(f"waits for {what}: {upstream} is itself waiting")
        instance = self.state.instances.get((upstream, upstream_server), upstream)
        entry = _reported(self.reports, upstream_server, instance)
        if entry is None or entry.config != wanted:
            raise wait(f"waits for {what}: not yet run with its current config")
        if entry.status != "COMPLETE":
            raise wait(f"waits for {what}: {entry.status.lower()}")
        if output is not None and output not in entry.outputs:
            raise wait(f"waits for {what}: COMPLETE but the output was not reported")
        return dict(entry.outputs)

    def in_cycle(self, dep: Deployment, upstream: str) -> bool:
        cycle = self.model.cycle_of(dep.qualified)
        return cycle is not None and upstream in cycle

    def known_so_far(self, upstream: str, upstream_server: str, output: str) -> Any:
        """Inside a declared cycle: the output as last reported COMPLETE by any
        config of the upstream, or ``_Missing`` (the input's default is used)."""
        report = self.reports.get(upstream_server)
        for name, got in (report.deployments if report else {}).items():
            complete = got.status == "COMPLETE" and output in got.outputs
            if name.split("@", 1)[0] == upstream and complete:
                return got.outputs[output]
        raise _Missing()

    def value(self, dep: Deployment, server: str, value: Any) -> Any:
        if isinstance(value, GetAttr) and self.in_cycle(dep, value.deployment):
            target = self.model.deployment(value.deployment)
            servers = [value.server] if value.server is not None else list(target.servers)
            got = {s: self.known_so_far(value.deployment, s, value.output) for s in servers}
            if value.server is None and target.reports_a_map:
                return got
            return got[servers[0]]
        if isinstance(value, GetAttr):
            target = self.model.deployment(value.deployment)
            if value.server is not None:
                return self.upstream_complete(
                    dep, server, value.deployment, value.server, value.output
                )[value.output]
            per_server = {
                s: self.upstream_complete(dep, server, value.deployment, s, value.output)[
                    value.output
                ]
                for s in target.servers
            }
            return per_server if target.reports_a_map else per_server[target.servers[0]]
        if isinstance(value, Computed):
            return value.fn(self.value(dep, server, value.args))
        if isinstance(value, dict):
            return {k: self.value(dep, server, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(dep, server, v) for v in value]
        return value

    def inputs(self, dep: Deployment, server: str) -> dict[str, Any]:
        for upstream in dep.depends_on:
            if self.in_cycle(dep, upstream):
                continue  # rounds order the members of a declared cycle
            for upstream_server in self.model.deployment(upstream).servers:
                self.upstream_complete(dep, server, upstream, upstream_server, None)
        component = self.model.components[dep.component]
        values: dict[str, Any] = {}
        for name, raw in dep.input_values.items():
            idef = component.input(name)
            assert idef is not None  # the loader checked every input name
            try:
                resolved = self.value(dep, server, raw)
            except _Missing:
                if not idef.has_default:
                    raise _Wait(
                        Waiting(
                            dep.qualified, server, dep.qualified, None, name,
                            f"input {name!r}: an output of the cycle is not known yet and "
                            "the input has no default",
                        )
                    ) from None  # fmt: skip
                values[name] = idef.default
                continue
            try:
                values[name] = coerce(idef.type, resolved)
            except ValueError as exc:
                raise _Wait(
                    Waiting(
                        dep.qualified,
                        server,
                        dep.qualified,
                        None,
                        name,
                        f"input {name!r}: reported value does not fit: {exc}",
                    )
                ) from None
        return values


def _instance(dep: Deployment, component: Component, values: dict[str, Any]) -> str:
    """The manifest name of a deployment's instance.

    A deployment whose component has ``replace_on_change`` inputs is named by
    those inputs' values (``<stack>/<deployment>@<8 hex>``): a change of them
    is a new instance, created next to the old one, which is deleted once the
    new one succeeded (create before delete).
    """
    replace = {
        i.name: values.get(i.name, i.default) for i in component.inputs if i.replace_on_change
    }
    if not replace:
        return dep.qualified
    return f"{dep.qualified}@{hex_of(digest_json(replace))[:8]}"


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
    cache = cache or RenderCache()
    state = DesiredState(commit=model.commit)
    resolver = _Resolver(model, reports, state)
    entries: dict[str, list[ManifestEntry]] = {s: [] for s in sorted(model.servers_in_use())}
    bundles: dict[str, dict[str, str]] = {s: {} for s in entries}
    previous_cache: dict[str, Manifest | None] = {}

    def prior(server: str) -> Manifest | None:
        if server not in previous_cache:
            previous_cache[server] = previous(server)
        return previous_cache[server]

    # A deployment's inputs do not depend on the server it is rendered for
    # (the server only appears in Waiting): resolved and rendered once per
    # deployment while its servers are walked, not once per server.
    memo: dict[str, ManifestEntry | Waiting] = {}

    def render(dep: Deployment, server: str) -> ManifestEntry | Waiting:
        qualified = dep.qualified
        got = memo.get(qualified)
        if got is None:
            component = model.components[dep.component]
            try:
                values = resolver.inputs(dep, server)
            except _Wait as waiting:
                got = memo[qualified] = waiting.waiting
            else:
                rendered = cache.render(component, values)
                state.configs[rendered.digest] = rendered
                for attached in component.files:
                    state.attachments[attached.zip_digest or attached.digest] = attached.content
                entry = ManifestEntry(
                    name=_instance(dep, component, values),
                    config=rendered.digest,
                    actions=dep.actions,
                    timeout=dep.timeout or component.timeout,
                    state=dep.state,
                    run=(dep.run.action, dep.run.token) if dep.run else None,
                )
                got = memo[qualified] = entry
        if isinstance(got, Waiting):
            if got.server == server:
                return got
            # Waiting(...) rather than dataclasses.replace: this runs once per pair.
            return Waiting(
                got.deployment, server, got.upstream, got.upstream_server, got.output, got.reason
            )
        key = (qualified, server)
        state.rendered[key] = got.config
        state.instances[key] = got.name
        return got

    # (deployment, server) of a declared cycle held back this pass, and why.
    held: dict[tuple[str, str], str] = {}
    decided: set[tuple[str, ...]] = set()
    for dep in model.deployments():
        memo.clear()
        component = model.components[dep.component]
        cycle = model.cycle_of(dep.qualified)
        if cycle is not None and rounds is not None and cycle not in decided:
            # The whole cycle is rendered before its first member is placed:
            # a round goes out (or not) as one.
            decided.add(cycle)
            fresh: dict[str, str] = {}
            for member in cycle:
                memo.clear()
                for server in model.deployment(member).servers:
                    got = render(model.deployment(member), server)
                    if isinstance(got, ManifestEntry):
                        fresh[f"{member}|{server}"] = got.config
            verdict = rounds.decide(cycle, fresh)
            if verdict.failure is not None:
                state.failures.append(verdict.failure)
            if not verdict.publish:
                for key in fresh:
                    member, server = key.split("|", 1)
                    held[(member, server)] = verdict.reason
        memo.clear()
        qualified = dep.qualified
        targets: dict[str, ManifestEntry] = {}
        for server in dep.servers:
            result = render(dep, server)
            if held and (qualified, server) in held:
                why = held[(qualified, server)]
                result = Waiting(qualified, server, qualified, None, None, why)
            if isinstance(result, Waiting):
                state.waiting.append(result)
                manifest = prior(server)
                # Every instance stays (a replacement in flight keeps its old one).
                kept = [
                    e
                    for e in (manifest.deployments if manifest else ())
                    if e.qualified == dep.qualified
                ]
                if kept and manifest is not None:
                    entries[server] += kept
                    bundles[server].update(manifest.bundles)
                continue
            targets[server] = result

        chosen: dict[str, ManifestEntry | None] = dict(targets)
        extra: dict[str, dict[str, str]] = {}
        if gate is not None:

            def before(
                server: str, qualified: str = dep.qualified
            ) -> tuple[ManifestEntry | None, dict[str, str]]:
                manifest = prior(server)
                return entry_of(manifest, qualified), manifest.bundles if manifest else {}

            decision = gate.decide(dep, targets, before)
            chosen, extra = decision.entries, decision.bundles
            state.failures += decision.failures
            for server, why in decision.waiting.items():
                state.waiting.append(Waiting(dep.qualified, server, dep.qualified, None, None, why))
            for server, read in decision.reads.items():  # update_order: reverse
                state.rendered[(dep.qualified, server)] = read.config
                state.instances[(dep.qualified, server)] = read.name
        zipped = [(a.digest, a.zip_digest) for a in component.files if a.zip_digest is not None]
        for server in dep.servers:
            target = targets.get(server)
            if target is None:
                continue
            entry = chosen.get(server)
            if entry is None:
                continue
            if entry is target:
                server_bundles = bundles[server]
                for digest, zip_digest in zipped:
                    server_bundles[digest] = zip_digest
            else:
                manifest = prior(server)
                bundles[server].update(extra.get(server) or (manifest.bundles if manifest else {}))
            older = _older_instances(prior(server), entry)
            if not older:
                entries[server].append(entry)
                continue
            got = _reported(reports, server, entry.name)
            if got is None or got.config != entry.config or got.status != "COMPLETE":
                # Create before delete: the old instance stays until the new
                # one succeeded; then it leaves the manifest and the agent
                # runs its DELETE.
                entries[server] += older
                manifest = prior(server)
                bundles[server].update(manifest.bundles if manifest else {})
            entries[server].append(entry)

    for server, server_entries in entries.items():
        # Bundles come from the components rendered for this server and, for
        # entries kept while waiting, from the manifest they were kept from.
        state.manifests[server] = Manifest(
            deployments=tuple(server_entries), bundles=bundles[server]
        )
    return state
