"""Running one process in its own group, within a deadline, and killing what is left.

Every hook and every tool's command runs in its own session (process group), so
a timeout, or the agent stopping, kills all it started. A hook run that outlived
a killed agent is recognised by its group leader's start time on the same boot,
so that only that very process group is ever killed.
"""

from __future__ import annotations

import contextlib
import os
import selectors
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
# After a hook ended, how long its pipes are still read. A child it left in
# another session (a daemon) may hold them open for ever: it is not waited for.
DRAIN_GRACE = 0.5
# What each stream of a process keeps: its last bytes (the report gets a
# shorter tail; the full logs on the server are these bytes too).
CAPTURE_BYTES = 4 * 1024 * 1024
PIPE_CHUNK = 65536


@dataclass(frozen=True)
class Outcome:
    """How one process ended, and what it wrote."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    aborted: bool = False
    start_error: str | None = None
    # Bytes written beyond CAPTURE_BYTES, dropped from the start of each stream.
    stdout_dropped: int = 0
    stderr_dropped: int = 0


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


class _Capture:
    """The last ``limit`` bytes one stream wrote, and how many bytes were dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - self.limit
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group, give it KILL_GRACE, then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE)


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
    """Run ``argv`` in its own session, feeding it ``stdin``, within ``timeout``.

    The pipes are read only while the process lives, and for DRAIN_GRACE after
    it ended (or was killed): a child it left behind in another session (a
    daemon, ``setsid ... &``) may hold them open for ever, and is neither
    waited for nor killed. Each stream keeps its last CAPTURE_BYTES.
    """
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
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = _Capture(CAPTURE_BYTES), _Capture(CAPTURE_BYTES)
    captures = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    try:
        timed_out, aborted = _pump(proc, stdin, captures, time.monotonic() + timeout, stop)
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
    return Outcome(
        proc.returncode,
        bytes(out.data),
        bytes(err.data),
        timed_out=timed_out,
        aborted=aborted,
        stdout_dropped=out.dropped,
        stderr_dropped=err.dropped,
    )


def _pump(
    proc: subprocess.Popen[bytes],
    stdin: bytes | None,
    captures: dict[int, _Capture],
    deadline: float,
    stop: threading.Event | None,
) -> tuple[bool, bool]:
    """Feed stdin and read the pipes until the process ended and its pipes are
    drained (or DRAIN_GRACE passed); kill its group at the deadline or on stop.
    Returns (timed_out, aborted)."""
    with selectors.DefaultSelector() as selector:
        pump = _Pump(proc, selector, captures, memoryview(stdin or b""), deadline, stop)
        pump.run()
        return pump.timed_out, pump.aborted


class _Pump:
    """One process's pipes, served by one selector until it ended and drained."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        selector: selectors.BaseSelector,
        captures: dict[int, _Capture],
        pending: memoryview,
        deadline: float,
        stop: threading.Event | None,
    ) -> None:
        self.proc, self.selector, self.captures = proc, selector, captures
        self.pending, self.deadline, self.stop = pending, deadline, stop
        self.timed_out = self.aborted = False
        for fd in captures:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if proc.stdin is not None:
            if pending:
                os.set_blocking(proc.stdin.fileno(), False)
                selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
            else:
                proc.stdin.close()

    def run(self) -> None:
        ended_at: float | None = None
        # The process may close its pipes and go on running: it still has a deadline.
        while self.selector.get_map() or self.proc.returncode is None:
            now = time.monotonic()
            self._enforce_deadline(now)
            if ended_at is None and self.proc.returncode is not None:
                ended_at = now
            if ended_at is not None and now - ended_at >= DRAIN_GRACE:
                return  # what is left holding the pipes is not the process we ran
            for key, _events in self.selector.select(POLL_SLICE):
                done = self._read(key.fd) if key.fd in self.captures else self._write(key.fd)
                if done:
                    self.selector.unregister(key.fd)

    def _enforce_deadline(self, now: float) -> None:
        if self.proc.returncode is not None or self.proc.poll() is not None:
            return
        if now >= self.deadline:
            self.timed_out = True
        elif self.stop is not None and self.stop.is_set():
            self.aborted = True
        if self.timed_out or self.aborted:
            _kill_group(self.proc)

    def _read(self, fd: int) -> bool:
        """Take what the pipe has; True at its end."""
        chunk = _read(fd)
        if chunk:
            self.captures[fd].add(chunk)
        return chunk == b""

    def _write(self, fd: int) -> bool:
        """Feed stdin; once it is all written (or the hook stopped reading), close it."""
        try:
            self.pending = self.pending[os.write(fd, self.pending[:PIPE_CHUNK]) :]
        except BlockingIOError:
            return False
        except BrokenPipeError:
            self.pending = memoryview(b"")
        if self.pending:
            return False
        self.selector.unregister(fd)
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # the hook reads to its end
        return False  # unregistered above, before its fd closed


def _read(fd: int) -> bytes | None:
    """What the pipe has now; b"" at its end; None when it has nothing yet."""
    try:
        return os.read(fd, PIPE_CHUNK)
    except BlockingIOError:
        return None
