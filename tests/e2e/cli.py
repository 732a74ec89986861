"""The ``setpoint`` command as the end-to-end tests run it: a real process."""

from __future__ import annotations

import subprocess
import sys


def setpoint(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``setpoint ARGS`` (warnings and up logged), its output captured, never raising."""
    return subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
