"""Running one process in its own group, within a deadline, and killing what is left.

Every hook and every tool's command runs in its own session (process group), so
a timeout, or the agent stopping, kills all it started. A hook run that outlived
a killed agent is recognised by its group leader's start time on the same boot,
so that only that very process group is ever killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# After SIGTERM to a hook's process group, how long before SIGKILL.
KILL_GRACE = 2.0
# How often a running hook checks whether the agent is stopping.
POLL_SLICE = 0.1


@dataclass(frozen=True)
class Outcome:
    """How one process ended, and what it wrote."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    aborted: bool = False
    start_error: str | None = None


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


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
