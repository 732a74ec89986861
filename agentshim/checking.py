"""Running a deployment's config in check mode: what it would change, nothing applied.

Preflight (a config not yet applied) and drift (the config applied) both ask
the same question, and this module answers it. What runs, the first that applies:

- the component's ``CHECK`` config (a standard action of its own, only in a
  component), run as it is: it must change nothing, print on stdout what would
  change or what differs (nothing when nothing) and exit non-zero when the
  check itself fails;
- the action's config, in its built-in tool's check mode (``CHECK_MODE`` of
  the tool: ansible ``--check --diff``, puppet ``--noop``, salt ``test=True``,
  chef ``--why-run``, docker compose ``config``);
- nothing: a script without a ``CHECK`` config, or an external hook (whose
  check mode the agent cannot know). The check then verified only that the
  config fetched and unpacked and that its tool is there: it passes, but
  cannot tell what would change (``known`` is False).

Check runs are masked like every run (the config's hidden inputs), and what
they would change is bounded to CHANGES_CHARS.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.files import files_or_reason
from setpoint.agentshim.hooks import HookRunner
from setpoint.agentshim.running import hook_document, masked
from setpoint.agentshim.tools import builtin_tool, check_mode
from setpoint.store import ManifestEntry, config_for_action
from setpoint.store.documents import COMPONENT_GROUP

CHECK_ACTION = "CHECK"
# How much of what a check says would change the report carries (the head:
# the first changes matter most), and the mark of a cut.
CHANGES_CHARS = 2000
CUT = "\n[... cut]"


@dataclass(frozen=True)
class CheckOutcome:
    """What a check found: ``ok`` False when the check failed (``reason``);
    ``changes`` what would change ("" for nothing); ``known`` False when
    nothing could tell (``reason`` says why)."""

    ok: bool
    changes: str = ""
    known: bool = True
    reason: str | None = None


def own_check(derived: dict[str, Any]) -> tuple[str, Any] | None:
    """The component's CHECK config, if it has one (another group's single
    config runs for every action: it is never a check)."""
    if derived.get("group") != COMPONENT_GROUP:
        return None
    return config_for_action(derived, CHECK_ACTION)


def bounded(changes: str) -> str:
    if len(changes) <= CHANGES_CHARS:
        return changes
    return changes[: CHANGES_CHARS - len(CUT)] + CUT


class Checker:
    """Runs the check of one deployment's config for one action."""

    def __init__(self, ctx: AgentContext, runner: HookRunner) -> None:
        self.ctx = ctx
        self.runner = runner

    def check(
        self, entry: ManifestEntry, action: str, derived: dict[str, Any]
    ) -> CheckOutcome | None:
        """The outcome, or None when the run was cut short because the agent stops."""
        files_dir, why = files_or_reason(self.ctx, entry.config, derived)
        if why is not None:
            return CheckOutcome(False, reason=why)
        own = own_check(derived)
        if own is not None:
            return self._run(entry, CHECK_ACTION, derived, own, files_dir, check=False)
        tool_config = config_for_action(derived, action)
        if tool_config is None:
            return CheckOutcome(True, reason=f"the component has no {action} config: nothing runs")
        tool = tool_config[0]
        if self.runner.find_external(tool) is None and check_mode(tool) is not None:
            return self._run(entry, action, derived, tool_config, files_dir, check=True)
        return self._presence(tool, tool_config[1])

    def _run(
        self,
        entry: ManifestEntry,
        action: str,
        derived: dict[str, Any],
        tool_config: tuple[str, Any],
        files_dir: Path | None,
        *,
        check: bool,
    ) -> CheckOutcome | None:
        tool, config = tool_config
        document = hook_document(self.ctx.server, entry, action, derived, tool, config, files_dir)
        result = self.runner.run(
            document, deployment=entry.name, timeout=entry.timeout, check=check
        )
        result = masked(derived, result)
        if result.aborted:
            return None
        if not result.ok:
            return CheckOutcome(False, reason=result.reason)
        if not check:
            # A CHECK config says what would change on its stdout.
            return CheckOutcome(True, bounded(result.stdout.strip()))
        if result.changes is None:
            why = f"{tool} checked the config but cannot say what would change"
            return CheckOutcome(True, known=False, reason=why)
        return CheckOutcome(True, bounded(result.changes))

    def _presence(self, tool: str, config: Any) -> CheckOutcome:
        """No check mode: verify only that the tool (or the script's interpreter) is there."""
        external = self.runner.find_external(tool)
        if external is None and builtin_tool(tool) is None:
            return CheckOutcome(False, reason=f"no hook for tool {tool!r} on this server")
        missing = None if external is not None else _missing_interpreter(tool, config)
        if missing is not None:
            return CheckOutcome(False, reason=missing)
        what = f"hook {tool!r}" if external is not None else f"a {tool} without a CHECK config"
        why = (
            f"{what} has no check mode: verified only that the config fetched and "
            "unpacked and that its tool is there"
        )
        return CheckOutcome(True, known=False, reason=why)


def _missing_interpreter(tool: str, config: Any) -> str | None:
    """Why a script could not start here (its ``#!`` interpreter is missing), or None."""
    if tool != "script" or not isinstance(config, str) or not config.startswith("#!"):
        return None
    words = config[2:].split("\n", 1)[0].split()
    if not words:
        return "the script's #! line names no interpreter"
    program = words[1] if Path(words[0]).name == "env" and len(words) > 1 else words[0]
    if shutil.which(program, path=os.environ.get("PATH", os.defpath)) is None:
        return f"the script's interpreter {program} is not on this server"
    return None
