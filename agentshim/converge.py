"""Converging the server to the accepted manifest, deployment by deployment.

For each deployment of the manifest, in order: nothing if its digest already
succeeded here; else CREATE (nothing ever succeeded for it) or UPDATE; then
its state (SUSPEND or RESUME); then a custom action whose token is new. Each
run's reported outputs replace those of the same name (as Heat's signal does). An
action outside the entry's ``actions``, or that the component has no config
for, is recorded COMPLETE without running. A failure is retried after a
backoff, up to ``max_attempts``; it never stops the other deployments.
Deployments gone from the manifest run their DELETE config (from the kept
copy), in reverse of their previous order, and are then forgotten.
"""

from __future__ import annotations

from typing import Any

from setpoint.agentshim.configs import load_config
from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.due import config_due, failure_for, gone, is_due, position_in_manifest
from setpoint.agentshim.errors import AgentError
from setpoint.agentshim.ledger import Ledger
from setpoint.agentshim.running import Attempts
from setpoint.agentshim.state import DeploymentState, Failure
from setpoint.store import Manifest, ManifestEntry, StoreError, config_for_action
from setpoint.store.documents import DELIVERED_GROUPS


class Converger:
    """Runs what is due for each deployment, and deletes what left the manifest."""

    def __init__(self, ctx: AgentContext, ledger: Ledger, attempts: Attempts) -> None:
        self.ctx = ctx
        self.ledger = ledger
        self.attempts = attempts

    def converge(self, manifest: Manifest) -> None:
        """Every entry in order, then what is gone; stops early when the agent stops."""
        for entry in manifest.deployments:
            if self.ctx.stop.is_set():
                break
            self._entry(entry)
        self._remove_gone(manifest)

    def _entry(self, entry: ManifestEntry) -> None:
        """The entry's digest first (CREATE or UPDATE), then its state
        (SUSPEND or RESUME), then a custom action whose token is new."""
        deployments = self.ctx.state.deployments
        if config_due(deployments.get(entry.name), entry):
            self._config(entry)
            if config_due(deployments.get(entry.name), entry):
                return
        dep = deployments[entry.name]
        if dep.state != entry.state:
            action = "SUSPEND" if entry.state == "suspended" else "RESUME"
            if not self._extra(dep, entry, action, None):
                return
        if entry.run is not None and dep.token != entry.run[1]:
            self._extra(dep, entry, entry.run[0], entry.run[1])

    def _due_config(
        self, dep: DeploymentState, entry: ManifestEntry, action: str, failure: Failure | None
    ) -> dict[str, Any] | None:
        """The derived config when the action is due and the config loads, else None
        (a config that does not load is a failed attempt)."""
        if not is_due(failure, self.ctx.clock()):
            return None
        try:
            return load_config(self.ctx.store, self.ctx.layout, entry.config)
        except (StoreError, AgentError) as exc:
            self.ledger.attempt_failed(dep, entry, action, failure, f"config unavailable: {exc}")
            return None

    def _config(self, entry: ManifestEntry) -> None:
        """CREATE or UPDATE the entry's digest."""
        state = self.ctx.state
        dep = state.deployments.get(entry.name)
        action = "UPDATE" if dep is not None and dep.succeeded else "CREATE"
        if dep is None:
            position = (state.generation, position_in_manifest(state, entry.name))
            dep = state.deployments[entry.name] = DeploymentState(entry, position)
        failure = failure_for(dep, entry.config, action, None, entry.retry)
        derived = self._due_config(dep, entry, action, failure)
        if derived is None:
            return
        if action not in entry.actions:
            self.ledger.skipped(
                dep,
                entry,
                action,
                f"{action} is not among the deployment's actions "
                f"({', '.join(entry.actions)}): nothing run",
            )
            return
        tool_config = config_for_action(derived, action)
        if tool_config is None:
            why = f"the component has no {action} config: nothing run"
            self.ledger.skipped(dep, entry, action, why)
            return
        delivered = self._delivered_only(entry, tool_config[0])
        if delivered is not None:
            self.ledger.skipped(dep, entry, action, delivered)
            return
        result = self.attempts.run(dep, entry, action, derived, tool_config, failure)
        if result is not None and result.ok:
            self.ledger.config_succeeded(dep, entry, action, result.outputs)

    def _extra(
        self, dep: DeploymentState, entry: ManifestEntry, action: str, token: str | None
    ) -> bool:
        """SUSPEND, RESUME or a custom action on a deployment whose digest
        succeeded here. A run that reports outputs refreshes them, as Heat's
        signal does; an action with nothing to run leaves them as they were."""
        failure = failure_for(dep, entry.config, action, token, entry.retry)
        derived = self._due_config(dep, entry, action, failure)
        if derived is None:
            return False
        tool_config = config_for_action(derived, action)
        custom = token is not None
        if (not custom and action not in entry.actions) or tool_config is None:
            why = (
                f"the component has no {action} config"
                if tool_config is None
                else f"{action} is not among the deployment's actions ({', '.join(entry.actions)})"
            )
            self.ledger.extra_done(dep, entry, action, token, f"{why}: nothing run", {})
            return True
        delivered = self._delivered_only(entry, tool_config[0])
        if delivered is not None:
            self.ledger.extra_done(dep, entry, action, token, delivered, {})
            return True
        result = self.attempts.run(dep, entry, action, derived, tool_config, failure)
        if result is None or not result.ok:
            return False
        self.ledger.extra_done(dep, entry, action, token, None, result.outputs)
        return True

    def _delivered_only(self, entry: ManifestEntry, tool: str) -> str | None:
        """Why a run completes at once: Heat's agents hand a ``Heat::Ungrouped`` or
        ``os-apply-config`` config to os-apply-config rather than a hook, and
        Heat completes such a deployment with NO_SIGNAL once it is delivered.
        None when it must run (a hook for the group is installed here)."""
        if not entry.no_signal or tool not in DELIVERED_GROUPS:
            return None
        if self.attempts.runner.find_external(tool) is not None:
            return None
        return f"NO_SIGNAL and no hook for group {tool!r}: complete once delivered, as in Heat"

    def _remove_gone(self, manifest: Manifest) -> None:
        """DELETE what left the manifest, last-deployed first, then forget it."""
        for name, dep in gone(self.ctx.state, manifest):
            if self.ctx.stop.is_set():
                return
            self._delete(name, dep)

    def _delete(self, name: str, dep: DeploymentState) -> None:
        entry = dep.entry
        if "DELETE" not in entry.actions:
            self.ledger.forget(name, "DELETE is not among the deployment's actions")
            return
        failure = failure_for(dep, entry.config, "DELETE", None, entry.retry)
        derived = self._due_config(dep, entry, "DELETE", failure)
        if derived is None:
            return
        tool_config = config_for_action(derived, "DELETE")
        if tool_config is None:
            self.ledger.forget(name, "the component has no DELETE config")
            return
        delivered = self._delivered_only(entry, tool_config[0])
        if delivered is not None:
            self.ledger.forget(name, delivered)
            return
        result = self.attempts.run(dep, entry, "DELETE", derived, tool_config, failure)
        if result is not None and result.ok:
            self.ledger.forget(name, "DELETE complete")
