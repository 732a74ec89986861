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
  process within the deadline) and it returns a ``HookResult``.

Every hook runs in its own session (process group) so a timeout, or the agent
stopping, kills all it started. Nothing ever succeeds silently: a missing hook,
a crash, a nonzero status, no JSON, a timeout each give a failed result with a
reason that says which.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.agentshim.state import Layout
from setpoint.agentshim.tools import builtin_tool

TAIL_CHARS = 4096
# After SIGTERM to a hook's process group, how long before SIGKILL.
KILL_GRACE = 2.0
# How often a running hook checks whether the agent is stopping.
POLL_SLICE = 0.1

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
PASSED_ENV = ("PATH", "HOME", "LANG")


def is_safe_name(name: str) -> bool:
    """A name that can be one path segment (tools, outputs, files, deployments)."""
    return bool(_SAFE_NAME.match(name)) and name not in (".", "..")


@dataclass(frozen=True)
class HookResult:
    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    reason: str | None = None
    aborted: bool = False


@dataclass(frozen=True)
class Outcome:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    aborted: bool = False
    start_error: str | None = None


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    return text[-limit:]


def input_as_env(value: Any) -> str:
    """Strings as they are; anything else as JSON (true/false, numbers, lists, maps)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- process identity (to kill a leftover hook after the agent was killed) --------


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def kill_leftover(pid: int, start: str | None, boot: str | None) -> bool:
    """Kill the process group of a hook run by a previous (killed) agent.

    Only when it is provably the same process: same boot, same leader start
    time. Returns True when a group was signalled.
    """
    if start is None or boot is None or boot != boot_id() or process_start(pid) != start:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# -- running one process ------------------------------------------------------------


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group, give it KILL_GRACE, then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_process(
    argv: list[str],
    *,
    stdin: bytes | None,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    stop: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Outcome:
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome(None, b"", b"", start_error=f"{exc.strerror or exc} ({argv[0]})")
    if on_start is not None:
        on_start(proc.pid)
    deadline = time.monotonic() + timeout
    timed_out = aborted = False
    pending = stdin
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
        elif stop is not None and stop.is_set():
            aborted = True
        else:
            try:
                out, err = proc.communicate(pending, timeout=min(remaining, POLL_SLICE))
            except subprocess.TimeoutExpired:
                pending = None  # communicate() keeps feeding what it was first given
                continue
            return Outcome(proc.returncode, out, err)
        break
    _kill_group(proc)
    try:
        out, err = proc.communicate(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        # Something left the group and still holds our pipes: give up on its output.
        proc.kill()
        out, err = proc.communicate()
    return Outcome(proc.returncode, out, err, timed_out=timed_out, aborted=aborted)


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


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


# -- the hooks ----------------------------------------------------------------------


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


class HookRunner:
    """Runs one document through its tool's hook."""

    def __init__(self, layout: Layout, hooks_dir: Path, stop: threading.Event | None = None):
        self.layout = layout
        self.hooks_dir = hooks_dir
        self.stop = stop

    def find_external(self, tool: str) -> Path | None:
        if not is_safe_name(tool):
            return None
        path = self.hooks_dir / tool
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
    ) -> HookResult:
        tool = str(document["group"])
        external = self.find_external(tool)
        if external is not None:
            return self._run_external(external, tool, document, deployment, timeout, on_start)
        builtin = builtin_tool(tool)
        if builtin is not None:
            self.layout.outputs.mkdir(parents=True, exist_ok=True, mode=0o700)
            call = ToolCall(
                tool=tool,
                document=document,
                work=self._work_dir(deployment),
                outputs_dir=self.layout.outputs,
                timeout=timeout,
                deadline=time.monotonic() + timeout,
                stop=self.stop,
                on_start=on_start,
            )
            return builtin(call)
        return HookResult(
            False,
            reason=(
                f"no hook for tool {tool!r}: not built in and no executable {self.hooks_dir / tool}"
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
        var = tool.upper().replace("-", "_").replace(".", "_")
        for kind in ("WORKING", "OUTPUTS"):
            base = self.layout.work if kind == "WORKING" else self.layout.outputs
            where = base / f"heat-{tool}"
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
        raw_out, raw_err = decode(outcome.stdout), decode(outcome.stderr)
        if outcome.returncode != 0:
            reason = status_text(what, outcome.returncode)
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
