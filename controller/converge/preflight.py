"""``setpoint plan --preflight``: a commit's changes checked on every server, nothing applied.

For each server, the entries of the commit whose digest differs from what the
server was given (or that it was never given) are published as the manifest's
preflight entries, beside the deployments it runs now, unchanged: the agent
checks them in its tools' check modes and reports what would change
(``agentshim.preflight``). A server with nothing to check keeps its pointer.
Each pointer keeps the commit it was deployed from, since the server still
runs that. Each entry carries a new run token, so a server checks it afresh even when it
answered for that digest before (the server may have changed since). The
answers are awaited, bounded, and shown per server.

The plan also writes a request document naming these entries
(``converge.preflight_requests``), which every reconcile pass merges into
what it publishes until the plan deletes it: a running controller
(``setpoint watch``) keeps the checks published, and, when it holds the
store's lease, is the one that publishes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from setpoint.controller.rollout.desired import DesiredState
from setpoint.controller.wording import counted
from setpoint.store.base import Store
from setpoint.store.digest import short
from setpoint.store.documents import CheckReport, Manifest, ManifestEntry, Pointer
from setpoint.store.errors import InvalidDocument

# How many lines of what a check says would change the plan shows per deployment.
SHOWN_LINES = 20
# The action named by the run token of a plan's preflight entries.
CHECK = "CHECK"


@dataclass
class PreflightPublication:
    """What to publish: per deployed commit, the manifests of its servers."""

    groups: dict[str, DesiredState] = field(default_factory=dict)
    # server -> the entries it is asked to check
    checks: dict[str, tuple[ManifestEntry, ...]] = field(default_factory=dict)
    # server -> the bundles those entries need (tree digest -> zip digest)
    bundles: dict[str, dict[str, str]] = field(default_factory=dict)
    # digest -> bytes of every config and file the entries to check name
    blobs: dict[str, bytes] = field(default_factory=dict)


def changed_entries(wanted: Manifest, prior: Manifest) -> tuple[ManifestEntry, ...]:
    """The entries of ``wanted`` whose digest the server was not given."""
    out = []
    for entry in wanted.deployments:
        given = prior.entry(entry.name)
        if given is None or given.config != entry.config:
            out.append(entry)
    return tuple(out)


def preflight_publication(
    head: DesiredState,
    previous: Callable[[str], Manifest | None],
    pointers: dict[str, Pointer | None],
    token: str,
) -> PreflightPublication:
    """Each server's manifest: what it runs, plus the head's changed entries to
    check, each with the run token ``token``, so that every server checks them
    afresh even when it answered for the same digest before."""
    out = PreflightPublication()
    for server in sorted(set(head.manifests) | {s for s, p in pointers.items() if p}):
        pointer = pointers.get(server)
        prior = previous(server) if pointer is not None else None
        if pointer is not None and prior is None:
            continue  # what it was given cannot be read: leave it alone
        prior = prior or Manifest(deployments=())
        wanted = head.manifests.get(server, Manifest(deployments=()))
        checks = tuple(replace(e, run=(CHECK, token)) for e in changed_entries(wanted, prior))
        if checks:
            out.checks[server] = checks
            out.bundles[server] = dict(wanted.bundles)
            out.blobs.update(_check_blobs(head, checks, wanted.bundles))
        # Checks a deployment's own preflight asked for stay, unless replaced.
        asked = {e.name for e in checks}
        kept = tuple(e for e in prior.preflight if e.name not in asked)
        commit = pointer.commit if pointer is not None else head.commit
        group = out.groups.setdefault(
            commit,
            DesiredState(commit=commit, configs=head.configs, attachments=head.attachments),
        )
        group.manifests[server] = Manifest(
            deployments=prior.deployments,
            bundles={**prior.bundles, **wanted.bundles} if checks else prior.bundles,
            preflight=checks + kept,
        )
    return out


def _check_blobs(
    head: DesiredState, entries: tuple[ManifestEntry, ...], bundles: dict[str, str]
) -> dict[str, bytes]:
    """The configs and files ``entries`` name, as rendered (all of them are)."""
    out: dict[str, bytes] = {}
    for entry in entries:
        rendered = head.configs[entry.config]
        out[entry.config] = rendered.blob
        for ref in rendered.body["files"].values():
            zipped = bundles.get(ref["digest"], ref["digest"])
            out[zipped] = head.attachments[zipped]
    return out


def await_answers(
    store: Store,
    checks: dict[str, tuple[ManifestEntry, ...]],
    timeout: float,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> dict[str, dict[str, CheckReport | None]]:
    """Each server's answer per entry (None: none within ``timeout`` seconds)."""
    answers: dict[str, dict[str, CheckReport | None]] = {
        server: dict.fromkeys((e.name for e in entries), None) for server, entries in checks.items()
    }
    deadline = clock() + timeout
    while True:
        for server, entries in checks.items():
            if all(answers[server].values()):
                continue
            try:
                report = store.read_report(server)
            except InvalidDocument:
                report = None
            for entry in entries:
                got = report.preflight.get(entry.name) if report else None
                asked = entry.run[1] if entry.run else None
                if got is not None and (got.config, got.token) == (entry.config, asked):
                    answers[server][entry.name] = got
        if all(all(a.values()) for a in answers.values()) or clock() >= deadline:
            return answers
        sleep(interval)


def preflight_passed(answers: dict[str, dict[str, CheckReport | None]]) -> bool:
    """Every server answered every check, and each one PASSED."""
    found = [got for a in answers.values() for got in a.values()]
    return all(got is not None and got.status == "PASSED" for got in found)


def answers_json(answers: dict[str, dict[str, CheckReport | None]]) -> dict[str, Any]:
    return {
        server: {name: got.to_dict() if got else None for name, got in sorted(a.items())}
        for server, a in sorted(answers.items())
    }


def format_answers(
    answers: dict[str, dict[str, CheckReport | None]], commit: str, timeout: float
) -> str:
    """Per server and deployment: PASSED with what would change, FAILED with why,
    or no answer."""
    found = [got for a in answers.values() for got in a.values()]
    passed = sum(1 for g in found if g is not None and g.status == "PASSED")
    failed = sum(1 for g in found if g is not None and g.status == "FAILED")
    silent = sum(1 for g in found if g is None)
    lines = [
        f"preflight of {commit[:12]} on {counted(len(answers), 'server')}: "
        f"{passed} passed, {failed} failed, {silent} without an answer"
    ]
    for server, per in sorted(answers.items()):
        for name, got in sorted(per.items()):
            if got is None:
                lines.append(f"{server} {name}: no answer within {timeout:g}s")
                continue
            head = f"{server} {name}: {got.status} ({short(got.config)})"
            if got.reason:
                head += f": {got.reason}"
            lines.append(head)
            changes = got.changes.splitlines()
            if got.status == "PASSED" and not changes and not got.reason:
                lines.append("  nothing would change")
            lines.extend(f"  {line}" for line in changes[:SHOWN_LINES])
            if len(changes) > SHOWN_LINES:
                lines.append(f"  ... {len(changes) - SHOWN_LINES} more lines")
    return "\n".join(lines) + "\n"
