"""Running one attempt of a deployment's action through its hook.

The attempt is marked in flight (on disk, with the hook's process once it
starts) and reported IN_PROGRESS before the hook runs. The hook gets Heat's
document: the derived config with the ``deploy_*`` inputs, its files in place.
The full stdout and stderr are kept on the server; the report gets their tails,
Heat's ``deploy_*`` outputs when the config declares them, and a failure when
an ``error_output`` is set. The values of inputs the derived config marks
``hidden`` are masked in all of these (heat-agents' hooks log every input to
stderr), before anything is cut to a tail, so no part of a secret survives.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.contract import HookResult
from setpoint.agentshim.files import files_or_reason
from setpoint.agentshim.hooks import HookRunner
from setpoint.agentshim.ledger import Ledger
from setpoint.agentshim.limits import MAX_OUTPUT_BYTES, bounded_outputs, tail
from setpoint.agentshim.processes import process_start
from setpoint.agentshim.reporting import iso
from setpoint.agentshim.state import DeploymentState, Failure
from setpoint.store import ManifestEntry
from setpoint.store.documents import DEPLOY_OUTPUTS
from setpoint.store.masking import mask_text, mask_values, secret_values

# Heat's attributes of every deployment, reported as outputs when the derived
# config declares them (as Heat templates' configs do): the hook never sets them.
# How much of a set ``error_output`` the failure's reason quotes.
ERROR_OUTPUT_CHARS = 200


class Attempts:
    """Runs attempts through the hook runner and records how each one went."""

    def __init__(self, ctx: AgentContext, runner: HookRunner, ledger: Ledger) -> None:
        self.ctx = ctx
        self.runner = runner
        self.ledger = ledger

    def run(
        self,
        dep: DeploymentState,
        entry: ManifestEntry,
        action: str,
        derived: dict[str, Any],
        tool_config: tuple[str, Any],
        failure: Failure | None,
    ) -> HookResult | None:
        """One attempt: in-flight marker and IN_PROGRESS, the hook, the logs.

        A failure is recorded here; a success is left to the caller to record
        (and commit). Returns None when the run was aborted because the agent is
        stopping (not counted as an attempt).
        """
        attempts = (failure.attempts if failure else 0) + 1
        self.ledger.started(dep, entry, action, tool_config[0], attempts)
        result = self._hook(entry, action, derived, tool_config)
        finished = self.ctx.clock()
        self._keep_logs(entry.name, result)
        assert dep.report is not None
        dep.report = replace(
            dep.report,
            outputs=dict(result.outputs),
            stdout_tail=tail(result.stdout),
            stderr_tail=tail(result.stderr),
            exit_code=result.exit_code,
            finished_at=iso(finished),
        )
        if result.aborted:
            self.ledger.aborted(dep, entry.name, attempts, result.reason)
            return None
        if not result.ok:
            self.ledger.failed(dep, entry, action, attempts, finished, result.reason)
            return result
        self.ctx.state.in_flight = None
        return result

    def _hook(
        self,
        entry: ManifestEntry,
        action: str,
        derived: dict[str, Any],
        tool_config: tuple[str, Any],
    ) -> HookResult:
        ctx = self.ctx
        tool, config = tool_config
        files_dir, why = files_or_reason(ctx, entry.config, derived, verify=True)
        if why is not None:
            return HookResult(False, reason=why)
        document = hook_document(ctx.server, entry, action, derived, tool, config, files_dir)

        def on_start(pid: int) -> None:
            flight = ctx.state.in_flight
            if flight is not None:
                flight.pid, flight.pid_start = pid, process_start(pid)
                ctx.save()

        result = self.runner.run(
            document, deployment=entry.name, timeout=entry.timeout, on_start=on_start
        )
        result = masked(derived, result)
        result = bounded_outputs(with_deploy_outputs(derived, result))
        return failed_on_error_output(derived, result) if result.ok else result

    def _keep_logs(self, name: str, result: HookResult) -> None:
        """The full stdout and stderr of the last run, for debugging on the server."""
        try:
            for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                path = self.ctx.layout.log_path(name, stream)
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.write_text(text)
        except OSError as exc:
            self.ctx.log.warning("log_write_failed", deployment=name, error=str(exc))


def hook_document(
    server: str,
    entry: ManifestEntry,
    action: str,
    derived: dict[str, Any],
    tool: str,
    config: Any,
    files_dir: Path | None,
) -> dict[str, Any]:
    """Heat's hook document: the derived config plus the ``deploy_*`` inputs."""
    deploy = [
        ("deploy_server_id", server),
        ("deploy_action", action),
        ("deploy_stack_id", entry.stack),
        ("deploy_resource_name", entry.deployment),
        ("deploy_signal_transport", "NO_SIGNAL"),
    ]
    if files_dir is not None:
        deploy.append(("setpoint_files_dir", str(files_dir)))
    inputs = [dict(i) for i in derived.get("inputs") or []]
    inputs += [{"name": n, "type": "String", "value": v} for n, v in deploy]
    return {
        "id": entry.config,
        "name": derived.get("name", entry.deployment),
        "group": tool,
        "config": config,
        "inputs": inputs,
        "outputs": [
            dict(o) for o in derived.get("outputs") or [] if o.get("name") not in DEPLOY_OUTPUTS
        ],
        "options": dict(derived.get("options") or {}),
    }


def masked(derived: dict[str, Any], result: HookResult) -> HookResult:
    """The result with the values of the config's hidden inputs masked in its
    streams, outputs, reason and (a check's) changes."""
    secrets = secret_values(derived)
    if not secrets:
        return result
    return replace(
        result,
        outputs=mask_values(dict(result.outputs), secrets),
        stdout=mask_text(result.stdout, secrets),
        stderr=mask_text(result.stderr, secrets),
        reason=None if result.reason is None else mask_text(result.reason, secrets),
        changes=None if result.changes is None else mask_text(result.changes, secrets),
    )


def with_deploy_outputs(derived: dict[str, Any], result: HookResult) -> HookResult:
    """The result with the ``deploy_*`` outputs the derived config declares (the
    streams' last MAX_OUTPUT_BYTES: they are logs, not values)."""
    declared = {o.get("name") for o in derived.get("outputs") or []}
    if not declared & set(DEPLOY_OUTPUTS):
        return result
    values = {
        "deploy_stdout": tail(result.stdout, MAX_OUTPUT_BYTES),
        "deploy_stderr": tail(result.stderr, MAX_OUTPUT_BYTES),
        "deploy_status_code": result.exit_code,
    }
    extra = {k: v for k, v in values.items() if k in declared}
    return replace(result, outputs={**result.outputs, **extra})


def failed_on_error_output(derived: dict[str, Any], result: HookResult) -> HookResult:
    """A successful result turned failed when an ``error_output`` of the config is set."""
    for output in derived.get("outputs") or []:
        name = output["name"]
        value = result.outputs.get(name)
        if output.get("error_output") and value not in (None, ""):
            text = value if isinstance(value, str) else repr(value)
            if len(text) > ERROR_OUTPUT_CHARS:
                text = text[:ERROR_OUTPUT_CHARS] + "..."
            return replace(result, ok=False, reason=f"error output {name!r} is set: {text!r}")
    return result
