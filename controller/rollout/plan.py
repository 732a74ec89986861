"""What merging HEAD would do to the fleet, compared with BASE: an exact, offline plan.

Rendering is a pure function of the commit (and of reported outputs), so both
commits are rendered here exactly as ``setpoint reconcile`` would render them,
and each (deployment, server) pair is compared by digest:

- CREATE: the pair is new in HEAD; DELETE: it is gone (its DELETE config runs);
- UPDATE: the digest changes; REPLACE: it changes and either the deployment's
  component changed or an input marked ``replace_on_change`` changed value;
- SUSPEND / RESUME: the digest is the same but ``state`` changes (the agent
  runs the component's SUSPEND or RESUME config); RUN: the same digest with a
  new ``run: {action, token}`` (the agent runs that custom action once);
- unchanged: equal digests, the same state, no new run token. A moved file or
  a reformatted YAML is "no change".
- REORDER: no server changes, but the batches the deployment's next update
  would go out in do (a new ``update_policy``, servers listed in another
  order): the change review shows who would go first.

A digest change that also changes ``state`` or ``run`` is an UPDATE (or
REPLACE) that says so. With a store, a ``setpoint retry`` the store's ledger
holds and no pointer carries yet is a RETRY: the agent tries the failed config
once more.

A pair whose inputs read outputs that only agents report (``get_attr``) has
no digest until those outputs exist. Without a store its config is rendered
with placeholders ("known after apply") and compared as such; with ``--store``
the outputs reported so far fill them in.

Values of inputs marked ``secret: true`` never appear in a plan: the diff
shows a mask, and says whether the secret changed. (They are still part of the
digest: the server must rerun when a password changes.)
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.model import Computed, Deployment, GetAttr, Model
from setpoint.controller.errors import Problem
from setpoint.controller.render.derived import derived_config
from setpoint.controller.rollout.batches import next_batch
from setpoint.controller.rollout.desired import DesiredState, compute_desired, entry_of
from setpoint.controller.rollout.inputs import output_reads
from setpoint.controller.rollout.outputs import (
    OutputChange,
    ShownOutput,
    output_changes,
    stack_outputs,
)
from setpoint.controller.rollout.plan_members import JOINS, EntryChange, entry_changes
from setpoint.controller.wording import counted
from setpoint.store.documents import Manifest, Report
from setpoint.store.masking import MASK

KNOWN_AFTER_APPLY = "known after apply"
# git's tree with no entries: the BASE of a repository's first commit.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
CREATE, UPDATE, REPLACE, DELETE, UNCHANGED = "CREATE", "UPDATE", "REPLACE", "DELETE", "unchanged"
# The same config, run again in another way: a state change or a custom action.
SUSPEND, RESUME, RUN, RETRY = "SUSPEND", "RESUME", "RUN", "RETRY"
# No server changes, but the order the next update would take them in does.
REORDER = "REORDER"
# The order in which a deployment's overall action is chosen from its servers'.
_WEIGHT = {
    UNCHANGED: 0,
    RETRY: 1,
    RUN: 2,
    RESUME: 3,
    SUSPEND: 4,
    UPDATE: 5,
    CREATE: 6,
    DELETE: 7,
    REPLACE: 8,
}

# (deployment, server) -> (config, count): retry counts the next pass publishes
Retries = dict[tuple[str, str], tuple[str, int]]

# digest -> [(environment, commit)] where it converged, newest first (see notes.py)
History = dict[str, list[tuple[str, str]]]


@dataclass(frozen=True)
class Side:
    """One (deployment, server) pair as one commit renders it."""

    deployment: str
    server: str
    component: str
    digest: str | None  # None: waits for reported outputs (known after apply)
    body: dict[str, Any]
    secrets: frozenset[str]
    replace_inputs: frozenset[str]
    # Where its inputs read reported outputs (``inputs.output_reads``).
    reads: frozenset[tuple[str, str | None]]
    state: str = "active"
    run: tuple[str, str] | None = None  # (action, token)

    def values(self) -> dict[str, Any]:
        return {i["name"]: i["value"] for i in self.body["inputs"]}


def _placeholder(value: Any, server: str) -> Any:
    if isinstance(value, GetAttr):
        where = f"@{value.server}" if value.server else ""
        return f"<{KNOWN_AFTER_APPLY}: {value.deployment}.{value.output}{where}>"
    if isinstance(value, Computed):
        return f"<{KNOWN_AFTER_APPLY}: {value.label} of {_placeholder(value.args, server)}>"
    if isinstance(value, dict):
        return {k: _placeholder(v, server) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholder(v, server) for v in value]
    return value


def rendered(model: Model, reports: dict[str, Report]) -> DesiredState:
    """``model`` rendered as reconcile would, with nothing published yet: the
    plan renders each commit once, for its sides and its stack outputs."""

    def nothing_published(_server: str) -> Manifest | None:
        return None

    return compute_desired(model, reports, nothing_published)


def render_sides(model: Model, desired: DesiredState) -> dict[tuple[str, str], Side]:
    """Every (deployment, server) pair of ``model``, as ``desired`` rendered it."""
    out: dict[tuple[str, str], Side] = {}
    for dep in model.deployments():
        qualified = dep.qualified
        component = model.components[dep.component]
        secrets = frozenset(i.name for i in component.inputs if i.secret)
        replace = frozenset(i.name for i in component.inputs if i.replace_on_change)
        reads = output_reads(model, dep)
        # Placeholders do not depend on the server: one symbolic body per deployment.
        symbolic_body: dict[str, Any] | None = None
        for server in dep.servers:
            digest = desired.rendered.get((qualified, server))
            if digest is not None:
                body = desired.configs[digest].body
            else:
                if symbolic_body is None:
                    symbolic = {k: _placeholder(v, server) for k, v in dep.input_values.items()}
                    symbolic_body = derived_config(component, symbolic).body
                body = symbolic_body
            out[(qualified, server)] = Side(
                deployment=qualified,
                server=server,
                component=dep.component,
                digest=digest,
                body=body,
                secrets=secrets,
                replace_inputs=replace,
                reads=reads,
                state=dep.state,
                run=(dep.run.action, dep.run.token) if dep.run else None,
            )
    return out


# -- readable text of a derived config, for diffs ----------------------------------------


def _indented(text: str) -> list[str]:
    return ["    " + line if line else "" for line in text.splitlines()]


def describe(body: dict[str, Any], secrets: frozenset[str], changed: frozenset[str]) -> str:
    """A derived config as people read it: config text, then input values, secrets masked."""
    lines = [f"component: {body['name']}"]
    for entry in body["config"]["configs"]:
        lines.append(f"config for {', '.join(entry['actions'])} (tool: {entry['tool']}):")
        config = entry["config"]
        text = config if isinstance(config, str) else json.dumps(config, indent=2, sort_keys=True)
        lines += _indented(text)
    lines.append("inputs:")
    for item in body["inputs"]:
        name, value = item["name"], item["value"]
        if name in secrets:
            lines.append(f"  {name} = {MASK} (secret{', changed' if name in changed else ''})")
        elif isinstance(value, str) and "\n" in value:
            lines.append(f"  {name} = |")
            lines += _indented(value)
        else:
            lines.append(f"  {name} = {json.dumps(value, sort_keys=True)}")
    outputs = [
        o["name"] + (" (error output)" if o["error_output"] else "") for o in body["outputs"]
    ]
    lines.append(f"outputs: {', '.join(outputs) or '-'}")
    lines.append(f"options: {json.dumps(body['options'], sort_keys=True)}")
    for name, ref in sorted(body["files"].items()):
        lines.append(f"file {name}: {ref['type']} {ref['digest']}")
    return "\n".join(lines) + "\n"


def unified_diff(old: str, new: str, label: str) -> str:
    return "\n".join(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), f"a/{label}", f"b/{label}", lineterm=""
        )
    )


def _changed(names: frozenset[str], old: dict[str, Any], new: dict[str, Any]) -> frozenset[str]:
    return frozenset(n for n in names if old.get(n, _MISSING) != new.get(n, _MISSING))


def _hidden(body: dict[str, Any] | None) -> frozenset[str]:
    """The secret inputs of a derived config as stored: those marked hidden."""
    inputs = body.get("inputs", []) if body else []
    return frozenset(i["name"] for i in inputs if i.get("hidden") is True)


def describe_stored(body: dict[str, Any]) -> str:
    """A derived config read from the store, as the plan describes one (secrets masked)."""
    return describe(body, _hidden(body), frozenset())


def stored_diff(old: dict[str, Any] | None, new: dict[str, Any], label: str) -> str:
    """What changed from derived config ``old`` (None: nothing before) to ``new``,
    both read from the store, as the plan shows a change: secret inputs masked."""
    secrets = _hidden(old) | _hidden(new)
    if old is None:
        return unified_diff("", describe(new, secrets, frozenset()), label)
    values = {i["name"]: i["value"] for i in old["inputs"]}
    new_values = {i["name"]: i["value"] for i in new["inputs"]}
    changed = _changed(secrets, values, new_values)
    return unified_diff(describe(old, secrets, frozenset()), describe(new, secrets, changed), label)


# -- the plan ---------------------------------------------------------------------------------


@dataclass
class ServerChange:
    server: str
    action: str
    old: str | None
    new: str | None
    known_after_apply: bool = False
    diff: str = ""
    # Why a pair without a digest may change: the upstreams it reads that change
    # where it reads them.
    reads_changed: list[str] = field(default_factory=list)
    # The same config already converged in another environment: (environment, commit).
    promoted_from: tuple[str, str] | None = None
    # The same config already converged in this environment (a revert): that commit.
    returning: str | None = None
    # (old, new) when the agent is told to suspend or resume it.
    state: tuple[str, str] | None = None
    # (action, token) of a custom action the agent runs once, newly requested.
    run: tuple[str, str] | None = None
    # The ``setpoint retry`` count the next pass publishes with the new config.
    retry: int | None = None
    # Entries its input maps gain or lose as servers join or leave a group it reads.
    entries: list[EntryChange] = field(default_factory=list)
    # Its config is the same until the joining servers reported; it re-runs then.
    after_joiners: bool = False

    @property
    def changes(self) -> bool:
        return self.action != UNCHANGED

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "action": self.action,
            "old": self.old,
            "new": self.new,
            "known_after_apply": self.known_after_apply,
            "reads_changed": self.reads_changed,
            "promoted_from": (
                {"environment": self.promoted_from[0], "commit": self.promoted_from[1]}
                if self.promoted_from
                else None
            ),
            "returning": self.returning,
            "state": {"old": self.state[0], "new": self.state[1]} if self.state else None,
            "run": {"action": self.run[0], "token": self.run[1]} if self.run else None,
            "retry": self.retry,
            "entries": [e.to_dict() for e in self.entries],
            "after_joiners": self.after_joiners,
            "diff": self.diff,
        }


@dataclass
class DeploymentChange:
    name: str
    component: str
    servers: list[ServerChange]
    batches: list[list[str]] = field(default_factory=list)
    # (old, new) batches of an update of every server, when they differ.
    reorders: tuple[list[list[str]], list[list[str]]] | None = None

    @property
    def stack(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def action(self) -> str:
        action = max((s.action for s in self.servers), key=_WEIGHT.__getitem__, default=UNCHANGED)
        return REORDER if action == UNCHANGED and self.reorders else action

    @property
    def changes(self) -> bool:
        return any(s.changes for s in self.servers) or self.reorders is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stack": self.stack,
            "component": self.component,
            "action": self.action,
            "servers": [s.to_dict() for s in self.servers],
            "batches": self.batches,
            "reorders": (
                {"old": self.reorders[0], "new": self.reorders[1]} if self.reorders else None
            ),
        }


@dataclass(frozen=True)
class Deployed:
    """What a store says is deployed (``setpoint plan --store URL [HEAD]``).

    Mid-rollout, or when a commit left some servers' configs alone (their
    pointers are not rewritten), the pointers name several commits: each
    server is planned from the commit its own pointer names (``pointers``).
    """

    commit: str | None  # the newest pointer's commit; None: nothing published yet
    not_converged: dict[str, str]  # server -> why it has not converged on its pointer
    # server -> the commit its pointer names (a server without one: nothing deployed)
    pointers: dict[str, str] = field(default_factory=dict)

    @property
    def commits(self) -> Counter[str]:
        """commit -> on how many servers' pointers it is."""
        return Counter(self.pointers.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "not_converged": dict(sorted(self.not_converged.items())),
            "commits": dict(sorted(self.commits.items())),
        }


@dataclass
class Plan:
    base: str
    head: str
    environment: str | None
    deployments: list[DeploymentChange]  # in rollout order
    base_problems: list[Problem] = field(default_factory=list)
    # With a store: blobs the change needs that the store lacks (None: not checked).
    uploads: int | None = None
    # Planned against what a store deployed (BASE is its commit); else None.
    deployed: Deployed | None = None
    # Stack outputs that merging HEAD adds, removes or changes.
    outputs: list[OutputChange] = field(default_factory=list)

    @property
    def changed(self) -> list[DeploymentChange]:
        return [d for d in self.deployments if d.changes]

    @property
    def servers_changed(self) -> list[str]:
        return sorted({s.server for d in self.deployments for s in d.servers if s.changes})

    @property
    def servers_unchanged(self) -> list[str]:
        every = {s.server for d in self.deployments for s in d.servers}
        return sorted(every - set(self.servers_changed))

    @property
    def has_changes(self) -> bool:
        return bool(self.changed)

    def summary(self) -> str:
        if not self.has_changes:
            return f"no change: {counted(len(self.servers_unchanged), 'server')} unchanged"
        changed, deps = len(self.servers_changed), len(self.changed)
        return (
            f"{counted(changed, 'server')}, {counted(deps, 'deployment')} change; "
            f"{counted(len(self.servers_unchanged), 'server')} unchanged"
        )

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form (``setpoint plan --format json``), documented in README.md."""
        return {
            "format": "setpoint-plan/1",
            "base": self.base,
            "head": self.head,
            "environment": self.environment,
            "changes": self.has_changes,
            "summary": {
                "text": self.summary(),
                "servers_changed": len(self.servers_changed),
                "deployments_changed": len(self.changed),
                "servers_unchanged": len(self.servers_unchanged),
            },
            "base_problems": [p.to_dict() for p in self.base_problems],
            "uploads": self.uploads,
            "deployed": self.deployed.to_dict() if self.deployed else None,
            "rollout": [{"deployment": d.name, "batches": d.batches} for d in self.changed],
            "deployments": [d.to_dict() for d in self.deployments],
            "outputs": [o.to_dict() for o in self.outputs],
        }


def rollout_batches(
    model: Model, deployment: str, creating: list[str], updating: list[str]
) -> list[list[str]]:
    """The batches in which ``deployment``'s change would reach its servers.

    Each batch is the one reconcile would admit (``batches.next_batch``, the
    same function): servers new to the deployment under ``batch_create``,
    changing ones under ``update_policy`` (``canary`` first when set, never
    below ``min_in_service``), in the order the deployment lists its servers.
    Offline, every server that had the deployment is assumed in service when a
    batch starts, and every batch completes; a rollout the policy cannot move
    at all is shown as one last batch.
    """
    dep = model.deployment(deployment)
    creates, updates = list(creating), list(updating)
    in_service = len([s for s in dep.servers if s not in creating])
    batches: list[list[str]] = []
    while creates or updates:
        take, _why = next_batch(
            dep,
            creates,
            updates,
            first=not batches,
            in_service=in_service,
            serving=lambda _server: True,
        )
        if not take:
            take = creates + updates  # min_in_service allows nothing: shown as one batch
        batches.append(sorted(take))
        # Once the batch completed, the servers it created serve too.
        in_service += len([s for s in take if s in creates])
        creates = [s for s in creates if s not in take]
        updates = [s for s in updates if s not in take]
    return batches


# Texts and diffs already made this plan, keyed by the identity of the bodies they
# describe: every server of a deployment shares its rendered body, so a change
# to a thousand servers is described and diffed once.
_Texts = dict[tuple[Any, ...], str]


# deployment -> the servers on which its pair changes
ChangedOn = dict[str, set[str]]


def _reads_changed(old: Side, new: Side, changed_on: ChangedOn) -> list[str]:
    """The upstreams ``new`` reads outputs of that change where it reads them:
    on the server it reads (a change elsewhere is not read), anywhere in a map
    it reads, or a read that moved (another server, a map instead of a value)."""

    def changes(upstream: str, server: str | None) -> bool:
        on = changed_on.get(upstream, set())
        return bool(on) if server is None else server in on

    both = {u for u, _ in old.reads} & {u for u, _ in new.reads}
    moved = {u for u, _ in old.reads ^ new.reads if u in both}
    return sorted(moved | {u for u, s in new.reads if changes(u, s)})


def _compare(
    old: Side | None, new: Side | None, changed_on: ChangedOn, texts: _Texts | None = None
) -> ServerChange:
    side = new or old
    assert side is not None
    server, label = side.server, side.deployment
    texts = {} if texts is None else texts
    if old is None or new is None:
        action = CREATE if old is None else DELETE
        only = new or old
        assert only is not None
        key: tuple[Any, ...] = (action, label, id(only.body), only.secrets)
        diff = texts.get(key)
        if diff is None:
            text = describe(only.body, only.secrets, frozenset())
            diff = unified_diff("", text, label) if new else unified_diff(text, "", label)
            texts[key] = diff
        return ServerChange(
            server,
            action,
            old.digest if old else None,
            new.digest if new else None,
            known_after_apply=(new is not None and new.digest is None),
            diff=diff,
        )
    known = old.digest is not None and new.digest is not None
    # Without digests, compare the configs rendered with placeholders.
    same = old.digest == new.digest if known else old.body == new.body
    reads_changed = _reads_changed(old, new, changed_on) if not known else []
    state = (old.state, new.state) if old.state != new.state else None
    run = new.run if new.run is not None and new.run != old.run else None
    if same and not reads_changed:
        # The same config; the agent still runs something when told to.
        if state is not None:
            action = SUSPEND if new.state == "suspended" else RESUME
        else:
            action = RUN if run is not None else UNCHANGED
        return ServerChange(server, action, old.digest, new.digest, not known, state=state, run=run)
    old_values, new_values = old.values(), new.values()
    secrets = old.secrets | new.secrets
    changed_secrets = _changed(secrets, old_values, new_values)
    key = (UPDATE, label, id(old.body), id(new.body), secrets, changed_secrets)
    diff = texts.get(key)
    if diff is None:
        old_text = describe(old.body, secrets, frozenset())
        new_text = describe(new.body, secrets, changed_secrets)
        diff = texts[key] = unified_diff(old_text, new_text, label)
    replaced = old.component != new.component or any(
        old_values.get(n, _MISSING) != new_values.get(n, _MISSING) for n in new.replace_inputs
    )
    return ServerChange(
        server,
        REPLACE if replaced and not same else UPDATE,
        old.digest,
        new.digest,
        known_after_apply=not known,
        diff=diff,
        reads_changed=reads_changed,
        state=state,
        run=run,
    )


_MISSING: Any = object()


def update_reorder(
    base: Model, head: Model, name: str
) -> tuple[list[list[str]], list[list[str]]] | None:
    """The batches an update of every server ``name`` keeps would go out in,
    under BASE and under HEAD, when they differ (a new ``update_policy``, or
    the servers listed in another order); None when they are the same."""
    if name not in base.order or name not in head.order:
        return None
    kept = set(base.deployment(name).servers)
    common = [s for s in head.deployment(name).servers if s in kept]
    old = rollout_batches(base, name, [], common)
    new = rollout_batches(head, name, [], common)
    return (old, new) if old != new else None


def _deployment_names(bases: list[Model], head: Model) -> list[str]:
    """Rollout order: HEAD's (dependencies first), then removed ones, dependents first."""
    names = list(head.order)
    for base in bases:
        names += [q for q in reversed(base.order) if q not in names]
    return names


# server -> the model its own pointer names, when it is not BASE (None: nothing deployed there)
Elsewhere = dict[str, Model | None]


def _bases(base: Model | None, elsewhere: Elsewhere) -> list[Model]:
    """Every distinct model some server was deployed from, BASE first."""
    found = {} if base is None else {base.commit: base}
    for model in elsewhere.values():
        if model is not None:
            found.setdefault(model.commit, model)
    return list(found.values())


# commit -> that commit's model rendered (``rendered``), for every model of ``_bases``
RenderedBases = dict[str, DesiredState]


def deployed_sides(
    base: Model | None, elsewhere: Elsewhere, renders: RenderedBases
) -> dict[tuple[str, str], Side]:
    """Every (deployment, server) pair as it is deployed: rendered from BASE,
    except on the servers of ``elsewhere``, rendered from the model their own
    pointer names. Each model is rendered once, whatever its number of servers."""
    servers_of: dict[str, set[str]] = {}
    for server, model in elsewhere.items():
        if model is not None:
            servers_of.setdefault(model.commit, set()).add(server)
    sides: dict[tuple[str, str], Side] = {}
    for model in _bases(base, elsewhere):
        on = servers_of.get(model.commit)
        for key, side in render_sides(model, renders[model.commit]).items():
            here = key[1] in on if on is not None else key[1] not in elsewhere
            if here:
                sides[key] = side
    return sides


def deployed_outputs(
    base: Model, elsewhere: Elsewhere, renders: RenderedBases, reports: dict[str, Report]
) -> list[ShownOutput]:
    """BASE's stack outputs, each read against the config its server runs: a
    server the rollout has not reached still reports the outputs of the config
    its own pointer names, which BASE would call not yet run (pending)."""
    if not any(stack.outputs for stack in base.stacks.values()):
        return []
    runs = DesiredState(commit=base.commit)
    for model in _bases(base, elsewhere):
        desired = renders[model.commit]
        for key, digest in desired.rendered.items():
            owner = elsewhere.get(key[1], base)  # None: nothing deployed there
            if owner is not None and owner.commit == model.commit:
                runs.rendered[key] = digest
                runs.instances[key] = desired.instances[key]
    return stack_outputs(base, runs, reports)


def make_plan(
    base: Model | None,
    head: Model,
    reports: dict[str, Report] | None = None,
    history: History | None = None,
    base_commit: str | None = None,
    base_problems: list[Problem] | None = None,
    retries: Retries | None = None,
    elsewhere: Elsewhere | None = None,
) -> Plan:
    """Compare ``base`` (None: it has invalid definitions) with ``head``.

    ``retries`` (from a store, ``retries_to_publish``): the pairs whose failed
    config the next pass publishes again with a new retry count.
    ``elsewhere`` (from a store's pointers): the servers deployed from another
    commit than BASE, each compared from that commit, membership entries
    included; stack outputs are BASE's, read against what each server runs.
    Batch order is still BASE's.
    """
    reports = reports or {}
    elsewhere = elsewhere or {}
    bases = _bases(base, elsewhere)
    renders = {model.commit: rendered(model, reports) for model in bases}
    head_render = rendered(head, reports)
    old_sides = deployed_sides(base, elsewhere, renders)
    new_sides = render_sides(head, head_render)
    env_name = head.environment or "default"
    changes: list[DeploymentChange] = []
    changed_on: ChangedOn = {}
    texts: _Texts = {}
    servers_of: dict[str, set[str]] = {}
    for d, s in (*old_sides, *new_sides):
        servers_of.setdefault(d, set()).add(s)
    for name in _deployment_names(bases, head):
        dep: Deployment = next(m.deployment(name) for m in (head, *bases) if name in m.order)
        servers = sorted(servers_of.get(name, ()))
        server_changes = [
            _compare(old_sides.get((name, s)), new_sides.get((name, s)), changed_on, texts)
            for s in servers
        ]
        for change in server_changes:
            if change.changes and change.new is not None and history:
                _mark_history(change, history.get(change.new, []), env_name)
            pending = (retries or {}).get((name, change.server))
            if pending is not None and change.new == pending[0]:
                change.retry = pending[1]
                if change.action == UNCHANGED:
                    change.action = RETRY
        if name in head.order:
            # Each server gains or loses entries from the commit it was deployed from:
            # a join leaves the members' pointers on the commit before it.
            for model, those in _by_deployed_model(base, elsewhere, server_changes):
                if name in model.order:
                    _note_entries(those, entry_changes(model, head, dep, reports))
        item = DeploymentChange(name=name, component=dep.component, servers=server_changes)
        if base is not None:
            item.reorders = update_reorder(base, head, name)
        changed_on[name] = {s.server for s in server_changes if s.changes}
        if item.changes:
            item.batches = _change_batches(head, name, server_changes)
        changes.append(item)
    return Plan(
        base=base.commit if base is not None else (base_commit or ""),
        head=head.commit,
        environment=head.environment,
        deployments=changes,
        base_problems=base_problems or [],
        outputs=output_changes(
            deployed_outputs(base, elsewhere, renders, reports) if base is not None else [],
            stack_outputs(head, head_render, reports),
        ),
    )


def _by_deployed_model(
    base: Model | None, elsewhere: Elsewhere, server_changes: list[ServerChange]
) -> list[tuple[Model, list[ServerChange]]]:
    """``server_changes`` by the model each server was deployed from (BASE, or
    the one its own pointer names); those with nothing deployed are left out."""
    groups: dict[str, tuple[Model, list[ServerChange]]] = {}
    for change in server_changes:
        model = elsewhere.get(change.server, base)  # None in elsewhere: nothing there
        if model is not None:
            groups.setdefault(model.commit, (model, []))[1].append(change)
    return list(groups.values())


def _change_batches(head: Model, name: str, server_changes: list[ServerChange]) -> list[list[str]]:
    """The batches in which a deployment's change reaches its servers."""
    creating = [s.server for s in server_changes if s.action == CREATE]
    updating = [
        s.server
        for s in server_changes
        if s.action not in (CREATE, DELETE, UNCHANGED) and not s.after_joiners
    ]
    later = [s.server for s in server_changes if s.after_joiners]
    removing = [s.server for s in server_changes if s.action == DELETE]
    batches = rollout_batches(head, name, creating, updating) if creating or updating else []
    if later:
        # Members re-run only once the newcomers reported: after them.
        batches += rollout_batches(head, name, [], later)
    if removing and batches:
        # Servers that leave a deployment that stays lose it at once, with the
        # first batch of the others' change (the gate holds no removal).
        batches[0] = sorted(batches[0] + removing)
    elif removing:
        # A deployment's removal is published to its servers at once.
        batches.append(removing)
    return batches


def _note_entries(server_changes: list[ServerChange], entries: list[EntryChange]) -> None:
    """Every server that keeps the deployment gains or loses ``entries``. One whose
    digest does not change yet (a newcomer that has not reported is left out of a
    contextualization map) re-runs once the newcomer reported: an UPDATE whose
    new digest is known after apply."""
    if not entries:
        return
    for change in server_changes:
        if change.action in (CREATE, DELETE):
            continue
        change.entries = entries
        if change.action == UNCHANGED and any(e.change == JOINS for e in entries):
            change.action, change.new, change.known_after_apply = UPDATE, None, True
            change.after_joiners = True


def _mark_history(change: ServerChange, hits: list[tuple[str, str]], env_name: str) -> None:
    for env, commit in hits:
        if env == env_name and change.returning is None:
            change.returning = commit
        elif env != env_name and change.promoted_from is None:
            change.promoted_from = (env, commit)


def retries_to_publish(
    retries: dict[str, dict[str, dict[str, Any]]],
    published: Callable[[str], Manifest | None],
) -> Retries:
    """The ``setpoint retry`` counts (the ledger's ``retries``) that no pointer
    carries yet: the next pass publishes each, and the agent runs its config
    again. ``published(server)`` is the manifest the server was last given."""
    pending: Retries = {}
    for deployment, by_server in sorted(retries.items()):
        for server, record in sorted(by_server.items()):
            config, count = str(record.get("config")), int(record.get("count") or 0)
            entry = entry_of(published(server), deployment)
            if count and (entry is None or (entry.config, entry.retry) != (config, count)):
                pending[(deployment, server)] = (config, count)
    return pending


def blobs_to_upload(
    head: Model, reports: dict[str, Report], find_missing: Callable[[list[str]], set[str]]
) -> int:
    """How many blobs publishing ``head`` would upload (configs and attached files)."""

    def nothing_published(_server: str) -> Manifest | None:
        return None

    desired = compute_desired(head, reports, nothing_published)
    wanted = sorted({*desired.configs, *desired.attachments})
    return len(find_missing(wanted)) if wanted else 0
