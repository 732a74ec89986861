"""Which servers get a deployment's new entry now: batches, failures, rollback.

``compute_desired`` renders every (deployment, server) pair; this module
decides, per deployment, which of the servers whose entry changed get it on
this pass, and what the others keep. The rules (issue 4):

- The batch in flight must finish (every server of it COMPLETE with its new
  entry) before the next one starts, and ``pause_time`` must have passed since
  it finished. The first batch is ``canary`` servers when set.
- Changing a server takes it out of service; a batch never takes the number of
  servers in service (COMPLETE with what they were given, agent reachable)
  below ``min_in_service``. Servers that never had the deployment are created
  under ``batch_create`` (default: all at once) and were not in service anyway.
- A failure (final FAILED, or no result within the entry's timeout) quarantines
  the failed digest on that server. While a deployment's current digest is
  quarantined anywhere, its rollout is stopped: ``halt`` leaves every server as
  it is; ``rollback`` gives every server that got the new entry the entry that
  last succeeded there (a new pointer generation naming the old digest).
- A quarantine is lifted by a commit that renders a different digest for that
  server, or by ``setpoint retry``.

It decides from the entries published (the previous manifests), the reports,
the ledger and the clock: nothing else, so a restarted controller continues
exactly where the store says the rollout was.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from setpoint.controller.definitions.model import Deployment
from setpoint.controller.rollout.batches import (
    UNREACHABLE_AFTER_BEATS,
    Batches,
    entry_result,
    unreachable,
)
from setpoint.controller.rollout.ledger import Ledger, Rollout
from setpoint.controller.wording import counted
from setpoint.store.documents import DeploymentReport, ManifestEntry, Report


@dataclass
class Decision:
    """What one deployment publishes on this pass."""

    entries: dict[str, ManifestEntry | None]  # server -> entry to publish (None: none)
    # server -> directory bundles a rolled-back entry needs (from its old manifest)
    bundles: dict[str, dict[str, str]] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)  # server -> why it keeps its entry
    failures: list[str] = field(default_factory=list)
    # server -> the entry dependents read this pass instead of the fresh render
    # (``update_order: reverse``: the old one, while the dependents go first)
    reads: dict[str, ManifestEntry] = field(default_factory=dict)
    # server -> the new entry it checks, not applies, before it is given it
    # (``preflight: true``: the manifest's preflight entries)
    preflight: dict[str, ManifestEntry] = field(default_factory=dict)
    # A rollout that starts without the servers whose check failed (``min_pass``):
    # what the operator must know, though nothing stopped.
    left_out: list[str] = field(default_factory=list)


@dataclass
class _Sorted:
    """The servers of one deployment, sorted by where its rollout stands."""

    rollout: Rollout | None
    done: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    before: dict[str, ManifestEntry | None] = field(default_factory=dict)
    bundles: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Gate:
    """Per-deployment rollout decisions over one pass, recorded in ``ledger``."""

    ledger: Ledger
    reports: dict[str, Report]
    now: float
    commit: str
    touched: set[str] = field(default_factory=set)
    unreachable_after: float = UNREACHABLE_AFTER_BEATS
    # deployment -> the deployments that depend on it (data flow, depends_on)
    dependents: dict[str, list[str]] = field(default_factory=dict)
    # Deployments whose every server runs its current render COMPLETE, this pass.
    settled: set[str] = field(default_factory=set)
    held_reverse: list[str] = field(default_factory=list)
    # Servers whose report answers an older generation than their pointer: a
    # failure there may be one the newer pointer (a `setpoint retry`) already
    # asks to try again, so it is judged once the agent answers (the timeout
    # still counts).
    behind: set[str] = field(default_factory=set)
    # Servers run by Heat's own agent (os-collect-config), which has no check mode.
    heat_servers: set[str] = field(default_factory=set)

    def _got(self, server: str, name: str) -> DeploymentReport | None:
        report = self.reports.get(server)
        return report.deployments.get(name) if report else None

    def decide(
        self,
        dep: Deployment,
        targets: dict[str, ManifestEntry],
        previous: Callable[[str], tuple[ManifestEntry | None, dict[str, str]]],
    ) -> Decision:
        """The entry each server in ``targets`` gets now, given what it had.

        ``previous(server)`` is the entry the server was last given for this
        deployment (None: none) and the bundles of that manifest.
        """
        if dep.update_order == "reverse" and self.dependents.get(dep.qualified):
            return self._reverse(dep, targets, previous)
        return self._decide(dep, targets, previous)

    # -- update_order: reverse -----------------------------------------------------------

    def _reverse(
        self,
        dep: Deployment,
        targets: dict[str, ManifestEntry],
        previous: Callable[[str], tuple[ManifestEntry | None, dict[str, str]]],
    ) -> Decision:
        """Dependents first: a change of ``dep`` waits until they are COMPLETE.

        Servers where ``dep`` runs COMPLETE and would change keep their entry,
        and dependents read it (its old outputs) while they roll out. When
        every dependent was COMPLETE with its current render at the end of a
        pass (``finish``), the change is released and rolls out as any other.
        New servers, and servers where the old entry is not COMPLETE (nothing
        to keep serving), are not held.
        """
        name = dep.qualified
        kept: dict[str, ManifestEntry] = {}
        for server, target in targets.items():
            prior, _bundles = previous(server)
            if prior is None or prior.config == target.config:
                continue
            if entry_result(prior, self._got(server, prior.name)) == "complete":
                kept[server] = prior
        changing = {s: targets[s].config for s in sorted(kept)}
        record = self.ledger.reverse.get(name)
        if not changing:
            self.ledger.reverse.pop(name, None)
            return self._decide(dep, targets, previous)
        same = record is not None and all(
            record.get("targets", {}).get(s) == c for s, c in changing.items()
        )
        if same and record is not None and record.get("ready"):
            return self._decide(dep, targets, previous)  # released: the dependents are done
        if not same:
            self.ledger.reverse[name] = {"targets": changing, "ready": False}
        self.held_reverse.append(name)
        decision = self._decide(dep, {s: t for s, t in targets.items() if s not in kept}, previous)
        why = (
            "update_order reverse: waits for its dependents "
            f"({', '.join(self.dependents[name])}) to roll out first"
        )
        for server, prior in kept.items():
            decision.entries[server] = prior
            decision.reads[server] = prior
            decision.waiting[server] = why
        return decision

    def finish(self) -> None:
        """End of pass: a held change is released once all its dependents settled."""
        for name in self.held_reverse:
            record = self.ledger.reverse.get(name)
            if record is not None:
                ready = all(d in self.settled for d in self.dependents.get(name, []))
                self.ledger.reverse[name] = {**record, "ready": ready}

    # -- batches -----------------------------------------------------------------------------

    def _decide(
        self,
        dep: Deployment,
        targets: dict[str, ManifestEntry],
        previous: Callable[[str], tuple[ManifestEntry | None, dict[str, str]]],
    ) -> Decision:
        name = dep.qualified
        self.touched.add(name)
        self._apply_ledger(name, targets)
        decision = Decision(entries={})
        seen = self._sort_servers(dep, targets, previous, decision)
        rollout = seen.rollout
        if seen.failed:
            return self._stop(
                dep, targets, seen.before, rollout, decision, seen.failed, seen.done, seen.running
            )
        if (
            rollout is not None
            and seen.running == []
            and rollout.batch
            and rollout.batch_done_at is None
        ):
            rollout.batch_done_at = self.now
        if not seen.pending:
            self._no_change_left(dep, rollout, seen)
            return decision
        left_out: dict[str, str] = {}
        if dep.preflight is not None:
            held = self._preflight(dep, targets, seen, decision)
            if held is None:
                return decision
            left_out = held
        pending = [s for s in seen.pending if s not in left_out]
        for server, reason in left_out.items():
            decision.waiting[server] = f"preflight failed ({reason}): left out of the rollout"
        failed = {s: f"preflight failed: {r}" for s, r in left_out.items()}
        if not pending:
            # Only servers left out remain: the rollout stays on record (what it
            # gave whom counts toward ``min_pass`` when one of them passes later).
            self._progress(dep, rollout, seen.done, seen.running, failed, [])
            return decision

        rollout = rollout or self._new_rollout(name)
        rollout.commit = self.commit
        rollout.outcome = "rolling"  # nothing stops it (any more): batches go on
        batches = Batches(self.reports, self.now, self.unreachable_after)
        why = batches.admit(
            dep,
            targets,
            seen.before,
            seen.bundles,
            rollout,
            pending,
            seen.running,
            decision.entries,
        )
        still = [s for s in pending if decision.entries.get(s) is not targets[s]]
        for server in still:
            decision.waiting[server] = why
        # Progress as it stands after this pass, so that the next pass, if
        # nothing happened meanwhile, finds the same and writes nothing.
        admitted = [s for s in pending if s not in still]
        self._progress(dep, rollout, seen.done, seen.running + admitted, failed, still)
        return decision

    def _preflight(
        self, dep: Deployment, targets: dict[str, ManifestEntry], seen: _Sorted, decision: Decision
    ) -> dict[str, str] | None:
        """``preflight``: every server not yet given its new digest checks it
        first (a preflight entry); no batch starts until each one answered. The
        rollout starts when at least ``min_pass`` of the servers checked passed
        (those this rollout already gave the digest count as passed); the
        servers whose check failed are left out of it, and returned with why.
        Fewer passed, or fewer can still pass: the rollout halts, naming the
        servers and why. None: held (checks out, or halted). An entry whose
        digest the server already has (a state, a run token, a drift
        correction) needs no check."""
        assert dep.preflight is not None
        name = dep.qualified
        changing = [
            s
            for s in seen.pending
            if (prior := seen.before.get(s)) is None or prior.config != targets[s].config
        ]
        if not changing:
            return {}
        given = seen.rollout.targets if seen.rollout else {}
        admitted = [
            s
            for s, config in given.items()
            if s in targets and s not in changing and targets[s].config == config
        ]
        failed, checking = self._answers(changing, targets, decision)
        checked = len(changing) + len(admitted)
        need = dep.preflight.required(checked)
        passed = checked - len(failed) - len(checking)
        share = f"{dep.preflight.describe()}: {passed} of {counted(checked, 'server')} passed"
        what = ", ".join(f"{s} ({r})" for s, r in sorted(failed.items()))
        if failed and checked - len(failed) < need:
            untouched = "" if seen.done or seen.running else "nothing of it applied"
            notes = [n for n in (untouched, "" if dep.preflight.everywhere else share) if n]
            decision.failures.append(
                f"{name}: preflight failed on {what}; rollout halted"
                + (f" ({'; '.join(notes)})" if notes else "")
            )
            why = f"preflight failed on {', '.join(sorted(failed))}"
            if seen.rollout is not None:
                # A rollout under way (an earlier commit's) stops here: its
                # progress is as it stands, no batch of it goes on.
                seen.rollout.outcome = "halted"
                self._progress(dep, seen.rollout, seen.done, seen.running, failed, [])
        elif checking:
            why = f"preflight: waiting for the check on {', '.join(sorted(checking))}"
        else:
            if failed:
                decision.left_out.append(
                    f"{name}: preflight failed on {what}; left out of the rollout ({share})"
                )
            return failed
        for server in seen.pending:
            decision.waiting[server] = why
        return None

    def _answers(
        self, changing: list[str], targets: dict[str, ManifestEntry], decision: Decision
    ) -> tuple[dict[str, str], list[str]]:
        """Ask each server in ``changing`` to check its new entry; the servers
        whose check failed (and why), and those still checking."""
        failed: dict[str, str] = {}
        checking: list[str] = []
        for server in changing:
            target = targets[server]
            decision.preflight[server] = target
            report = self.reports.get(server)
            got = report.preflight.get(target.name) if report else None
            if got is not None and got.config == target.config:
                if got.status == "FAILED":
                    failed[server] = got.reason or "failed"
            elif server in self.heat_servers:
                failed[server] = "Heat's agent runs it, which cannot check a change first"
            elif unreachable(report, self.now, self.unreachable_after):
                # Its answer may never come: halt rather than wait for ever.
                failed[server] = "the agent is unreachable (no heartbeat): no answer"
            else:
                checking.append(server)
        return failed, checking

    def _apply_ledger(self, name: str, targets: dict[str, ManifestEntry]) -> None:
        """Quarantines a new render lifts, and the retry counts each target carries."""
        held = self.ledger.quarantine.get(name, {})
        # A commit that renders another digest for a server lifts its quarantine.
        for server in [s for s, q in held.items() if s in targets]:
            if targets[server].config != held[server].config:
                self.ledger.quarantine_lift(name, server)
        for server, target in list(targets.items()):
            count = self.ledger.retry_count(name, server, target.config)
            if count != target.retry:
                targets[server] = replace(target, retry=count)
        for server in list(self.ledger.retries.get(name, {})):
            if server in targets and not targets[server].retry:
                del self.ledger.retries[name][server]  # another digest now: forget the retries

    def _sort_servers(
        self,
        dep: Deployment,
        targets: dict[str, ManifestEntry],
        previous: Callable[[str], tuple[ManifestEntry | None, dict[str, str]]],
        decision: Decision,
    ) -> _Sorted:
        """Each target server as done, running, failed or pending (not given it yet);
        every server keeps its prior entry in ``decision`` until admitted."""
        name = dep.qualified
        seen = _Sorted(rollout=self.ledger.rollouts.get(name))
        for server in dep.servers:
            if server not in targets:
                continue
            target = targets[server]
            prior, seen.bundles[server] = previous(server)
            seen.before[server] = prior
            decision.entries[server] = prior
            quarantined = self.ledger.quarantined(name, server)
            if quarantined is not None and quarantined.config == target.config:
                seen.failed[server] = quarantined.reason
            elif prior != target:
                seen.pending.append(server)
            else:
                self._judge(name, server, target, seen)
        return seen

    def _judge(self, name: str, server: str, target: ManifestEntry, seen: _Sorted) -> None:
        """Sort a server that was given ``target``: by its report, or by its timeout."""
        result = entry_result(target, self._got(server, target.name))
        if result == "failed" and server in self.behind:
            result = "running"
        if result == "complete":
            seen.done.append(server)
            return
        if result == "failed":
            got = self._got(server, target.name)
            seen.failed[server] = (got.reason if got else None) or "failed"
            self.ledger.quarantine_add(name, server, target.config, seen.failed[server])
            return
        started = seen.rollout.started.get(server) if seen.rollout else None
        if started is None:
            # Published before the ledger knew (an older controller, a
            # lost ledger): its timeout counts from now.
            seen.rollout = seen.rollout or self._new_rollout(name)
            seen.rollout.started[server] = self.now
            started = self.now
        if self.now - started > target.timeout:
            seen.failed[server] = f"timeout: no result within {target.timeout:g}s"
            self.ledger.quarantine_add(name, server, target.config, seen.failed[server])
        else:
            seen.running.append(server)

    def _no_change_left(self, dep: Deployment, rollout: Rollout | None, seen: _Sorted) -> None:
        """Every server was given its target: settled, still running, or over."""
        if not seen.running and len(seen.done) == len(dep.servers):
            self.settled.add(dep.qualified)
        if seen.running:
            self._progress(dep, rollout, seen.done, seen.running, seen.failed, seen.pending)
        elif rollout is not None:
            del self.ledger.rollouts[dep.qualified]  # every server has it: the rollout is over

    # -- failure ---------------------------------------------------------------------------

    def _stop(
        self,
        dep: Deployment,
        targets: dict[str, ManifestEntry],
        before: dict[str, ManifestEntry | None],
        rollout: Rollout | None,
        decision: Decision,
        failed: dict[str, str],
        done: list[str],
        running: list[str],
    ) -> Decision:
        """A failure stops the rollout: halt where it is, or roll back."""
        name = dep.qualified
        rollout = rollout or self._new_rollout(name)
        what = ", ".join(f"{s} ({r})" for s, r in sorted(failed.items()))
        if dep.on_failure == "rollback":
            rolled: list[str] = []
            for server, prior in before.items():
                if prior is None or rollout.targets.get(server) != prior.config:
                    continue
                if server in rollout.good:
                    decision.entries[server] = rollout.good_entry(server)
                    decision.bundles[server] = dict((rollout.good[server] or {}).get("bundles", {}))
                    rolled.append(server)
            rollout.outcome = "rolled_back"
            rollout.rolled_back = sorted(set(rollout.rolled_back) | set(rolled))
            if rolled:
                decision.failures.append(
                    f"{name}: failed on {what}; rolled back on {', '.join(sorted(rolled))}"
                )
            else:
                decision.failures.append(f"{name}: failed on {what}; rolled back")
        else:
            rollout.outcome = "halted"
            decision.failures.append(f"{name}: failed on {what}; rollout halted")
        for server in targets:
            if server not in failed:
                decision.waiting.setdefault(server, f"rollout {rollout.outcome.replace('_', ' ')}")
        still = [s for s in targets if s not in failed and s not in done and s not in running]
        self._progress(dep, rollout, done, running, failed, still)
        return decision

    def _new_rollout(self, name: str) -> Rollout:
        rollout = self.ledger.rollouts[name] = Rollout(deployment=name, commit=self.commit)
        return rollout

    def _progress(
        self,
        dep: Deployment,
        rollout: Rollout | None,
        done: list[str],
        running: list[str],
        failed: dict[str, str],
        waiting: list[str],
    ) -> None:
        if rollout is None:
            return
        policy = dep.policy(False)
        size = policy.max_batch_size or max(len(waiting), 1)
        remaining = math.ceil(len(waiting) / size) if waiting else 0
        progress: dict[str, Any] = {
            "batch": rollout.batches,
            "batches": rollout.batches + remaining,
            "done": sorted(done),
            "in_progress": sorted(running),
            "failed": dict(sorted(failed.items())),
            "waiting": sorted(waiting),
        }
        rollout.progress = progress

    def forget_others(self, deployments: set[str]) -> None:
        """Drop records of deployments no longer in the commit."""
        for name in [n for n in self.ledger.rollouts if n not in deployments]:
            del self.ledger.rollouts[name]
        for name in [n for n in self.ledger.quarantine if n not in deployments]:
            del self.ledger.quarantine[name]
        for name in [n for n in self.ledger.retries if n not in deployments]:
            del self.ledger.retries[name]
        for name in [n for n in self.ledger.reverse if n not in deployments]:
            del self.ledger.reverse[name]
