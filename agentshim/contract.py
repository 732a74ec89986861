"""The hook-running contract that the runner and the built-in tools share.

A built-in tool gets a ``ToolCall`` (the document, where to work, how to run a
process within the deadline) and returns a ``HookResult``; so does every
external hook, through the runner (``agentshim.hooks``). Both the runner and
the tools import this module, and it imports neither of them.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.agentshim.processes import Outcome, decode, run_process

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
PASSED_ENV = ("PATH", "HOME", "LANG")


def is_safe_name(name: str) -> bool:
    """A name that can be one path segment (tools, outputs, files, deployments)."""
    return bool(_SAFE_NAME.match(name)) and name not in (".", "..")


@dataclass(frozen=True)
class HookResult:
    """What one run of a hook gave: success, outputs, the streams, and why not."""

    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    reason: str | None = None
    aborted: bool = False
    # A run in check mode: the tool's summary of what it would change ("" for
    # nothing); None from a run that applied, or when the tool cannot tell.
    changes: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """What the runner hands a built-in tool for one run of one document."""

    tool: str
    document: dict[str, Any]
    work: Path  # the deployment's working dir (made, 0700): every process runs in it
    outputs_dir: Path  # where ``$heat_outputs_path.<name>`` files go (made, 0700)
    timeout: float  # the deployment's timeout, for messages
    deadline: float  # time.monotonic() by which everything the tool runs has ended
    stop: threading.Event | None = None
    on_start: Callable[[int], None] | None = None
    # Check mode: the tool says what it would change and changes nothing
    # (ansible --check --diff, puppet --noop, salt test=True, chef --why-run,
    # docker compose config). Only tools in ``tools.CHECK_MODES`` get it.
    check: bool = False

    def execute(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        stdin: bytes | None = None,
        limit: float | None = None,
    ) -> Outcome:
        """Run one process in the working dir, in its own group, within the deadline
        (and within ``limit`` seconds when given)."""
        remaining = max(self.deadline - time.monotonic(), 0.0)
        if limit is not None:
            remaining = min(remaining, limit)
        return run_process(
            argv,
            stdin=stdin,
            env=env,
            cwd=self.work,
            timeout=remaining,
            stop=self.stop,
            on_start=self.on_start,
        )


def input_as_env(value: Any, type_name: str | None = None) -> str:
    """Strings as they are; a CommaDelimitedList as ``a,b`` (as Heat's script hook
    gives it); anything else as JSON (true/false, numbers, lists, maps)."""
    if isinstance(value, str):
        return value
    if type_name == "CommaDelimitedList" and isinstance(value, list):
        return ",".join(input_as_env(item) for item in value)
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def interrupted(outcome: Outcome, what: str, timeout: float) -> HookResult | None:
    """The failed result of a run that did not end on its own, else None."""
    stdout, stderr = decode(outcome.stdout), decode(outcome.stderr)
    if outcome.start_error is not None:
        return HookResult(False, reason=f"cannot start {what}: {outcome.start_error}")
    if outcome.timed_out:
        reason = f"{what} timed out after {timeout:g}s: killed its process group"
        return HookResult(False, {}, stdout, stderr, outcome.returncode, reason)
    if outcome.aborted:
        reason = f"{what} aborted: the agent was stopping (killed its process group)"
        return HookResult(False, {}, stdout, stderr, outcome.returncode, reason, aborted=True)
    return None


def status_text(what: str, returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"{what} was killed by signal {signal.Signals(-returncode).name}"
        return f"{what} was killed by signal {-returncode}"
    return f"{what} exited with status {returncode}"
