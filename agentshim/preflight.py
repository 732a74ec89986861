"""Preflight: the manifest's preflight entries checked, never applied.

The controller lists a change it wants checked before its rollout starts in the
manifest's ``preflight`` (entries like the deployments', naming the new
digests). The agent fetched and verified their configs and files with the
manifest; after converging, it checks each one once per digest (the action
the change would run: UPDATE where the deployment succeeded here, else
CREATE) and reports PASSED, with what would change, or FAILED, with why.
A FAILED check is checked again after a backoff that doubles each time (the
retry delays of failed runs): once the server is fixed (the tool installed,
the disk freed) it passes, and the rollout that waited for it goes on. Results
of entries no longer listed are dropped.
"""

from __future__ import annotations

from setpoint.agentshim.checking import Checker
from setpoint.agentshim.configs import load_config
from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.due import retry_delay
from setpoint.agentshim.errors import AgentError
from setpoint.store import CheckReport, Manifest, ManifestEntry, StoreError


class Preflight:
    """Checks the manifest's preflight entries, each digest once."""

    def __init__(self, ctx: AgentContext, checker: Checker, retry_backoff: float) -> None:
        self.ctx = ctx
        self.checker = checker
        self.retry_backoff = retry_backoff
        # name -> (failed checks in a row, when to check again); in memory only:
        # a restarted agent checks a failed entry again at once.
        self.failures: dict[str, tuple[int, float]] = {}

    def run(self, manifest: Manifest) -> None:
        ctx, state = self.ctx, self.ctx.state
        listed = {e.name for e in manifest.preflight}
        if set(state.preflight) - listed:
            state.preflight = {n: r for n, r in state.preflight.items() if n in listed}
            ctx.commit()
        for entry in manifest.preflight:
            if ctx.stop.is_set() or not self._due(entry):
                continue
            found = self._check(entry)
            if found is None:
                return
            self._count(entry.name, found)
            if found == state.preflight.get(entry.name):
                continue  # checked again, with the same answer: nothing to write
            state.preflight[entry.name] = found
            log = ctx.log.info if found.status == "PASSED" else ctx.log.warning
            log(
                "preflight_checked",
                deployment=entry.name,
                config=entry.config,
                status=found.status,
                reason=found.reason,
            )
            ctx.commit()

    def _due(self, entry: ManifestEntry) -> bool:
        """Not checked yet for this digest (and run token: ``plan --preflight``
        asks for a fresh answer with a new one), or FAILED and its retry time came."""
        done = self.ctx.state.preflight.get(entry.name)
        if done is None or (done.config, done.token) != (entry.config, token_of(entry)):
            self.failures.pop(entry.name, None)
            return True
        if done.status != "FAILED":
            return False
        _count, retry_at = self.failures.get(entry.name, (0, 0.0))
        return self.ctx.clock() >= retry_at

    def _count(self, name: str, found: CheckReport) -> None:
        if found.status != "FAILED":
            self.failures.pop(name, None)
            return
        count = self.failures.get(name, (0, 0.0))[0] + 1
        delay = retry_delay(self.retry_backoff, count)
        self.failures[name] = (count, self.ctx.clock() + delay)

    def _check(self, entry: ManifestEntry) -> CheckReport | None:
        dep = self.ctx.state.deployments.get(entry.name)
        action = "UPDATE" if dep is not None and dep.succeeded else "CREATE"
        token = token_of(entry)
        if action not in entry.actions:
            why = f"{action} is not among the deployment's actions: nothing would run"
            return CheckReport(entry.config, "PASSED", reason=why, token=token)
        try:
            derived = load_config(self.ctx.store, self.ctx.layout, entry.config)
        except (StoreError, AgentError) as exc:
            why = f"config unavailable: {exc}"
            return CheckReport(entry.config, "FAILED", reason=why, token=token)
        outcome = self.checker.check(entry, action, derived)
        if outcome is None:
            return None
        status = "PASSED" if outcome.ok else "FAILED"
        return CheckReport(entry.config, status, outcome.changes, outcome.reason, token=token)


def token_of(entry: ManifestEntry) -> str | None:
    """The run token a preflight entry carries (None: none): a new one asks for
    a fresh check of the same digest."""
    return entry.run[1] if entry.run is not None else None
