"""A deployment's page: its servers in rollout order with their state, the
derived config it gives them (secret inputs masked), and what changed against
the digest they ran before."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from setpoint.controller.converge.runs import Masker, matches
from setpoint.controller.converge.status import DeploymentStatus, quarantine_reason
from setpoint.controller.dashboard.overview import held_back, pair_state
from setpoint.controller.dashboard.snapshot import Snapshot
from setpoint.controller.rollout.ledger import Rollout
from setpoint.controller.rollout.plan import describe_stored, stored_diff
from setpoint.store.digest import short
from setpoint.store.errors import StoreError

if TYPE_CHECKING:
    from setpoint.controller.dashboard.app import Dashboard


@dataclass
class ServerRow:
    server: str
    state: str
    status: DeploymentStatus | None
    batch: int | None = None  # the rollout's batch that took it (None: not taken)
    # Why it waits, failed or is quarantined (a failure's reason masked).
    why: str | None = None


@dataclass
class ConfigShown:
    """The derived config of one digest, described as the plan describes it."""

    digest: str
    text: str | None = None
    previous: str | None = None
    diff: str | None = None
    error: str | None = None


@dataclass
class DeploymentView:
    name: str
    servers: list[ServerRow]  # in rollout order
    rollout: Rollout | None
    counts: Counter[str] = field(default_factory=Counter)
    # The digests desired across the servers, most servers first.
    digests: list[tuple[str, int]] = field(default_factory=list)
    config: ConfigShown | None = None


def resolve_name(snapshot: Snapshot, wanted: str) -> str | None:
    """The ``stack/deployment`` that ``wanted`` names (``stack/name`` or a
    unique ``name``); None when it names none, or more than one."""
    known = {d.name for s in snapshot.statuses for d in s.deployments}
    known.update(snapshot.ledger.rollouts)
    known.update(str(w.get("deployment")) for w in snapshot.ledger.waiting)
    if wanted in known:
        return wanted
    found = [n for n in known if matches(n, wanted)]
    return found[0] if len(found) == 1 else None


def _batches(rollout: Rollout | None) -> dict[str, int]:
    """server -> the batch of ``rollout`` that took it: servers given their new
    entry in the same pass started together, one batch per pass."""
    if rollout is None:
        return {}
    times = sorted(set(rollout.started.values()))
    number = {t: i + 1 for i, t in enumerate(times)}
    return {server: number[t] for server, t in rollout.started.items()}


def _why(
    snapshot: Snapshot, masker: Masker, name: str, server: str, dep: DeploymentStatus | None
) -> str | None:
    """Why the pair is not converged: the quarantine's reason, the run's, or the wait."""
    held = snapshot.ledger.quarantined(name, server)
    if held is not None and dep is not None and held.config == dep.desired:
        return f"quarantined: {quarantine_reason(masker, held)}"
    if dep is not None and dep.run is not None and dep.failed:
        return dep.run.reason or dep.run.withheld  # masked by fleet_status
    return held_back(snapshot).get((name, server))


def _rows(
    snapshot: Snapshot, masker: Masker, name: str, rollout: Rollout | None
) -> list[ServerRow]:
    held = held_back(snapshot)
    batch_of = _batches(rollout)
    rows: list[ServerRow] = []
    for status in snapshot.statuses:
        dep = next((d for d in status.deployments if d.name == name), None)
        waits = held.get((name, status.server))
        if dep is None and waits is None:
            continue
        state = pair_state(status, dep, waits)
        why = _why(snapshot, masker, name, status.server, dep)
        rows.append(ServerRow(status.server, state, dep, batch_of.get(status.server), why))
    following = {
        s: i for i, s in enumerate((rollout.progress.get("waiting") if rollout else []) or [])
    }
    # Rollout order: the batches taken, in order; then those it takes next; then the rest.
    rows.sort(
        key=lambda r: (
            r.batch if r.batch is not None else len(batch_of) + 1,
            following.get(r.server, len(following)),
            r.server,
        )
    )
    return rows


def _previous(view: DeploymentView, digest: str) -> str | None:
    """The digest that the servers now given ``digest`` ran before it: the one
    the rollout would roll back to, else the one they still report."""
    rollout = view.rollout
    for row in view.servers:
        if row.status is None or row.status.desired != digest:
            continue
        good = rollout.good.get(row.server) if rollout is not None else None
        if good and good.get("config") and good["config"] != digest:
            return str(good["config"])
        if row.status.reported and row.status.reported != digest:
            return row.status.reported
    return None


def _config(dashboard: Dashboard, view: DeploymentView, digest: str) -> ConfigShown:
    shown = ConfigShown(digest)
    try:
        body: dict[str, Any] = dashboard.store.get_json_blob(digest, "derived config")
    except StoreError as exc:
        shown.error = f"derived config {short(digest)} cannot be read: {exc}"
        return shown
    shown.text = describe_stored(body)
    shown.previous = _previous(view, digest)
    before: dict[str, Any] | None = None
    if shown.previous is not None:
        try:
            before = dashboard.store.get_json_blob(shown.previous, "derived config")
        except StoreError as exc:
            shown.error = f"previous config {short(shown.previous)} cannot be read: {exc}"
            return shown
    shown.diff = stored_diff(before, body, view.name)
    return shown


def _default_digest(view: DeploymentView, rollout: Rollout | None) -> str | None:
    """The digest a rollout in flight brings (what is changing), else the one
    most servers are given."""
    if rollout is not None and rollout.targets:
        return Counter(rollout.targets.values()).most_common(1)[0][0]
    return view.digests[0][0] if view.digests else None


def deployment_view(
    dashboard: Dashboard, snapshot: Snapshot, wanted: str, digest: str | None
) -> DeploymentView | None:
    """The page of deployment ``wanted``; ``digest`` picks which of its derived
    configs to show (default: the one most servers are given)."""
    name = resolve_name(snapshot, wanted)
    if name is None:
        return None
    rollout = snapshot.ledger.rollouts.get(name)
    view = DeploymentView(name, _rows(snapshot, Masker(dashboard.store), name, rollout), rollout)
    desired: Counter[str] = Counter()
    for row in view.servers:
        view.counts[row.state] += 1
        if row.status is not None and row.status.desired is not None:
            desired[row.status.desired] += 1
    view.digests = desired.most_common()
    chosen = digest if digest in desired else _default_digest(view, rollout)
    if chosen is not None:
        view.config = _config(dashboard, view, chosen)
    return view
