"""What an idle agent costs: requests, CPU and memory per poll once converged.

Two measures on a published fleet:

- through the store layer, one idle poll of a pointer (conditional on its
  etag): its requests, wire requests, bytes and whether it was a 304, and the
  CPU time of ``poll_pointer`` averaged over many polls;
- a real ``setpoint-agent`` process polling every ``interval`` seconds once
  its deployments are COMPLETE: CPU per poll (utime + stime from /proc over a
  window, divided by the polls made in it) and resident memory (VmRSS, VmHWM).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from setpoint.store.base import Store

CLK_TCK = os.sysconf("SC_CLK_TCK")


def store_poll(make_store: Callable[[], Store], server: str, polls: int = 500) -> dict[str, Any]:
    poller = make_store()
    got = poller.poll_pointer(server, None)
    assert got is not None
    etag = got[1]
    poller.stats.reset()
    assert poller.poll_pointer(server, etag) is None
    one = poller.stats.as_dict()
    start = time.process_time()
    for _ in range(polls):
        poller.poll_pointer(server, etag)
    one["cpu_ms_per_poll"] = (time.process_time() - start) * 1000 / polls
    return one


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def agent_command(store_url: str, server: str, state_dir: Path, interval: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agentshim",
        "--store",
        store_url,
        "--server",
        server,
        "--allow-unsigned",
        "--state-dir",
        str(state_dir),
        "--interval",
        str(interval),
        "--log-format",
        "json",
    ]


def agent_process(
    store_url: str,
    server: str,
    is_complete: Callable[[], bool],
    interval: float = 0.1,
    window: float = 10.0,
) -> dict[str, Any]:
    """Start one agent, wait until ``is_complete()``, then measure ``window`` idle seconds."""
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-agent-") as tmp:
        proc = subprocess.Popen(
            agent_command(store_url, server, Path(tmp) / "state", interval),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not is_complete():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the agent did not converge")
                time.sleep(0.1)
            time.sleep(2 * interval)
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(window)
            cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
            polls = (t1 - t0) / interval
            return {
                "interval_s": interval,
                "window_s": round(t1 - t0, 2),
                "polls_estimated": round(polls),
                "cpu_ms_per_poll": (cpu1 - cpu0) * 1000 / polls,
                "rss_mb": _status_kb(proc.pid, "VmRSS") / 1024,
                "peak_rss_mb": _status_kb(proc.pid, "VmHWM") / 1024,
            }
        finally:
            proc.terminate()
            proc.wait(timeout=10)
