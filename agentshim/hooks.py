"""Running a config through its hook: the heat-config contract.

A hook gets Heat's document: ``{id, name, group, config, inputs, outputs,
options}``. Two kinds:

- an executable ``<hooks-dir>/<tool>`` (any heat-agents hook works unmodified):
  the document as JSON on stdin, a JSON object on stdout with ``deploy_stdout``,
  ``deploy_stderr``, ``deploy_status_code``; every other key is an output;
- a built-in tool (used when no ``<hooks-dir>/<tool>`` exists), one module per
  tool in ``agentshim.tools`` (``script``, ``ansible``, ``puppet``, ``salt``,
  ``chef``, ``docker-compose``), each following its heat-agents hook: the
  runner hands it a ``ToolCall`` (the document, where to work, how to run a
  process within the deadline) and it returns a ``HookResult`` (both in
  ``agentshim.contract``, which the tools import instead of this module).

Every hook runs in its own session (process group, ``agentshim.processes``) so
a timeout, or the agent stopping, kills all it started. Nothing ever succeeds
silently: a missing hook, a crash, a nonzero status, no JSON, a timeout each
give a failed result with a reason that says which.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from setpoint.agentshim.contract import HookResult, ToolCall, interrupted, is_safe_name, status_text
from setpoint.agentshim.processes import CAPTURE_BYTES, Outcome, decode, run_process
from setpoint.agentshim.state import Layout
from setpoint.agentshim.tools import builtin_tool


class HookRunner:
    """Runs one document through its tool's hook."""

    def __init__(self, layout: Layout, hooks_dir: Path, stop: threading.Event | None = None):
        self.layout = layout
        self.hooks_dir = hooks_dir
        self.stop = stop

    def find_external(self, tool: str) -> Path | None:
        path = self.hooks_dir / hook_file_name(tool)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        return None

    def run(
        self,
        document: dict[str, Any],
        *,
        deployment: str,
        timeout: float,
        on_start: Callable[[int], None] | None = None,
        check: bool = False,
    ) -> HookResult:
        """Run ``document``; with ``check``, in the built-in tool's check mode (an
        external hook has none: it is never run for a check)."""
        tool = str(document["group"])
        external = self.find_external(tool)
        if external is not None:
            if check:
                return HookResult(False, reason=f"hook {tool!r} ({external}) has no check mode")
            return self._run_external(external, tool, document, deployment, timeout, on_start)
        builtin = builtin_tool(tool)
        if builtin is not None:
            # A check's output files go apart: they must not replace the outputs
            # of the run that applied the same config.
            outputs = self.layout.check_outputs if check else self.layout.outputs
            outputs.mkdir(parents=True, exist_ok=True, mode=0o700)
            call = ToolCall(
                tool=tool,
                document=document,
                work=self._work_dir(deployment),
                outputs_dir=outputs,
                timeout=timeout,
                deadline=time.monotonic() + timeout,
                stop=self.stop,
                on_start=on_start,
                check=check,
            )
            return builtin(call)
        return HookResult(
            False,
            reason=(
                f"no hook for tool {tool!r}: not built in and no executable "
                f"{self.hooks_dir / hook_file_name(tool)}"
            ),
        )

    def _work_dir(self, deployment: str) -> Path:
        work = self.layout.work_dir(deployment)
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        return work

    # -- external hooks ------------------------------------------------------------

    def _run_external(
        self,
        hook: Path,
        tool: str,
        document: dict[str, Any],
        deployment: str,
        timeout: float,
        on_start: Callable[[int], None] | None,
    ) -> HookResult:
        env = dict(os.environ)
        name = hook_file_name(tool)
        var = name.upper().replace("-", "_").replace(".", "_")
        for kind in ("WORKING", "OUTPUTS"):
            base = self.layout.work if kind == "WORKING" else self.layout.outputs
            where = base / f"heat-{name}"
            where.mkdir(parents=True, exist_ok=True, mode=0o700)
            env[f"HEAT_{var}_{kind}"] = str(where)
        what = f"hook {tool!r}"
        outcome = run_process(
            [str(hook)],
            stdin=json.dumps(document).encode(),
            env=env,
            cwd=self._work_dir(deployment),
            timeout=timeout,
            stop=self.stop,
            on_start=on_start,
        )
        failed = interrupted(outcome, what, timeout)
        if failed is not None:
            return failed
        return _hook_output(what, tool, outcome)


def hook_file_name(tool: str) -> str:
    """The file in the hooks directory that runs ``tool``: its own name when that
    is a safe file name, else heat-config's rule (55-heat-config's
    ``find_hook_path``): its letters, digits, ``-`` and ``_`` only, so
    ``Heat::Ungrouped`` is ``HeatUngrouped``."""
    if is_safe_name(tool):
        return tool
    return "".join(c for c in tool if c in "-_" or c.isalnum()) or "_"


def _hook_output(what: str, tool: str, outcome: Outcome) -> HookResult:
    """The result an external hook that ran to its end reported: its status, then
    the JSON object on its stdout (``deploy_*`` keys and the outputs)."""
    raw_out, raw_err = decode(outcome.stdout), decode(outcome.stderr)
    if outcome.returncode != 0:
        reason = status_text(what, outcome.returncode)
        return HookResult(False, {}, raw_out, raw_err, outcome.returncode, reason)
    if outcome.stdout_dropped:
        size = len(outcome.stdout) + outcome.stdout_dropped
        reason = f"{what} printed {size} bytes on stdout, more than the {CAPTURE_BYTES} read"
        return HookResult(False, {}, raw_out, raw_err, outcome.returncode, reason)
    try:
        result = json.loads(raw_out)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        kind = "no JSON" if result is None else "JSON that is not an object"
        reason = f"{what} printed {kind} on stdout"
        return HookResult(False, {}, raw_out, raw_err, outcome.returncode, reason)

    status = result.pop("deploy_status_code", 0)
    stdout = result.pop("deploy_stdout", "")
    stderr = result.pop("deploy_stderr", "")
    stdout = stdout if isinstance(stdout, str) else json.dumps(stdout)
    stderr = stderr if isinstance(stderr, str) else json.dumps(stderr)
    if raw_err:
        stderr = f"{stderr}\n--- {tool} hook stderr ---\n{raw_err}" if stderr else raw_err
    try:
        code = int(status if status is not None else 0)
    except (TypeError, ValueError):
        bad = f"{what} reported a deploy_status_code that is not an integer: {status!r}"
        return HookResult(False, result, stdout, stderr, None, bad)
    if code != 0:
        bad = f"{what} reported deploy_status_code {code}"
        return HookResult(False, result, stdout, stderr, code, bad)
    return HookResult(True, result, stdout, stderr, code)
