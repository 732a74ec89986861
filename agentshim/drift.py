"""Drift: the applied configs checked again on a schedule, nothing applied.

With ``--drift-interval`` the agent re-runs, every interval (jittered ±10%),
the check mode of each deployment whose digest succeeded here and is active
(``agentshim.checking``: the action is UPDATE, what a correction would run);
a suspended deployment is not checked and has no drift result. A digest is
first checked one jittered interval after it was applied, or after the agent
started, never at start-up: a fleet restarted at once does not run every
tool's check mode at once, and a config just applied needs no check yet.
and reports per deployment: ``clean``, ``drifted`` (with the tool's summary
of what differs) or ``unknown`` (nothing can tell: a script without a CHECK
config). The config's attached files and directories are checked first, by
digest against what was unpacked, without running any tool: a file changed
there is drift whatever the tool says.

The results go into the report only when one changed, so a clean, unchanged
fleet writes nothing. ``count`` numbers the drifts found on a digest (it grows
each time a deployment turns drifted): the controller asks for a correction
(``on_drift: correct``) once per drift.
"""

from __future__ import annotations

import random

from setpoint.agentshim.checking import Checker
from setpoint.agentshim.configs import load_config
from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.errors import AgentError
from setpoint.agentshim.files import files_drift
from setpoint.agentshim.state import DeploymentState
from setpoint.store import CheckReport, Manifest, ManifestEntry, StoreError

JITTER = 0.1


class DriftWatch:
    """Checks the applied configs every ``interval`` seconds (None: never)."""

    def __init__(
        self, ctx: AgentContext, checker: Checker, interval: float | None, rng: random.Random
    ) -> None:
        self.ctx = ctx
        self.checker = checker
        self.interval = interval
        self.rng = rng
        # deployment -> (the applied digest, when its next check is due)
        self.due: dict[str, tuple[str, float]] = {}

    def _jittered(self) -> float:
        assert self.interval is not None
        return self.interval * self.rng.uniform(1 - JITTER, 1 + JITTER)

    def run(self, manifest: Manifest) -> None:
        """A drift check of every applied config whose check is due; one report
        write at most, and only when a result changed."""
        ctx = self.ctx
        if self.interval is None:
            return
        now = ctx.clock()
        state = ctx.state
        active = {
            e.name: e for e in manifest.deployments if applied(state.deployments.get(e.name), e)
        }
        for name, entry in active.items():
            if self.due.get(name, ("", 0.0))[0] != entry.config:
                self.due[name] = (entry.config, now + self._jittered())  # applied, or started
        self.due = {n: d for n, d in self.due.items() if n in active}
        # Results only for what is applied and active now, each for its digest.
        found = {
            n: r for n, r in state.drift.items() if n in active and r.config == active[n].config
        }
        for name, entry in active.items():
            if now < self.due[name][1]:
                continue
            if ctx.stop.is_set():
                return
            result = self._check(entry)
            if result is None:
                return
            found[name] = result
            self.due[name] = (entry.config, now + self._jittered())
        if found != state.drift:
            for name, result in found.items():
                if result != state.drift.get(name):
                    log = ctx.log.warning if result.status == "drifted" else ctx.log.info
                    log("drift_checked", deployment=name, status=result.status, count=result.count)
            state.drift = found
            ctx.commit()

    def _check(self, entry: ManifestEntry) -> CheckReport | None:
        ctx = self.ctx
        try:
            derived = load_config(ctx.store, ctx.layout, entry.config)
        except (StoreError, AgentError) as exc:
            return self._result(entry, "unknown", "", f"config unavailable: {exc}")
        changed_files = files_drift(ctx.layout.files_dir(entry.config), derived)
        if changed_files:
            return self._result(entry, "drifted", changed_files, None)
        outcome = self.checker.check(entry, "UPDATE", derived)
        if outcome is None:
            return None
        if not outcome.ok:
            return self._result(entry, "unknown", "", f"the check failed: {outcome.reason}")
        if not outcome.known:
            return self._result(entry, "unknown", "", outcome.reason)
        status = "drifted" if outcome.changes else "clean"
        return self._result(entry, status, outcome.changes, None)

    def _result(
        self, entry: ManifestEntry, status: str, changes: str, reason: str | None
    ) -> CheckReport:
        """The result, numbered: one more drift when it turns drifted."""
        before = self.ctx.state.drift.get(entry.name)
        same = before is not None and before.config == entry.config
        count = before.count if before is not None and same else 0
        if status == "drifted" and not (before is not None and same and before.status == status):
            count += 1
        return CheckReport(entry.config, status, changes, reason, count)


def applied(dep: DeploymentState | None, entry: ManifestEntry) -> bool:
    """The entry's digest succeeded here, its last run too, and it is active
    (here, and in the manifest: one being suspended is not checked either)."""
    return (
        entry.state == "active"
        and dep is not None
        and dep.succeeded == entry.config
        and dep.report is not None
        and dep.report.status == "COMPLETE"
        and dep.state == "active"
    )
