"""``setpoint status --watch`` as a person runs it: a real process on a real store,
with its output piped (a log: only what changed) or on a pseudo-terminal (redrawn),
ended by Ctrl-C with exit 0."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.cli.main import main
from setpoint.store.local import LocalStore
from tests.controller.fleet import component
from tests.controller.published import report_every_entry

STACK = """\
kind: Stack
deployments:
  app:
    component: app
    servers: [s1, s2]
    input_values: {version: "1"}
"""


@pytest.fixture
def store_dir(make_repo: Callable[..., Path], tmp_path: Path) -> Path:
    repo = make_repo({"components/app/component.yaml": component(), "stacks/web.yaml": STACK})
    store = tmp_path / "store"
    assert main(["reconcile", "--repo", str(repo), "--store", str(store)]) == 0
    return store


def watch_command(store: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "setpoint.controller.cli",
        "status",
        "--store",
        str(store),
        "--watch",
        "--interval",
        "0.1",
        *extra,
    ]


def read_until(fd: int, wanted: str, seen: bytearray, timeout: float = 20.0) -> str:
    """Read ``fd`` into ``seen`` until ``wanted`` shows up; all of it so far."""
    deadline = time.monotonic() + timeout
    while wanted not in seen.decode(errors="replace"):
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} never came; got:\n{seen.decode(errors='replace')}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the pty closed
                chunk = b""
            assert chunk, f"{wanted!r} never came; got:\n{seen.decode(errors='replace')}"
            seen += chunk
    return seen.decode(errors="replace")


def read_lines_until(fd: int, wanted: str, seen: bytearray) -> str:
    """``read_until``, then on to the end of the line being written."""
    text = read_until(fd, wanted, seen)
    while not text.endswith("\n"):
        ready, _, _ = select.select([fd], [], [], 20.0)
        assert ready, f"the line never ended: {text!r}"
        seen += os.read(fd, 65536)
        text = seen.decode(errors="replace")
    return text


def interrupt(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=20)


def test_piped_watch_prints_only_what_changed_and_ctrl_c_exits_0(store_dir: Path) -> None:
    proc = subprocess.Popen(
        watch_command(store_dir, "--server", "s1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        fd, seen = proc.stdout.fileno(), bytearray()
        first = read_until(fd, "s1  (agent)  -  -  NEVER REPORTED", seen)
        assert "s1  web/app" in first
        assert "PENDING" in first
        assert "s2" not in first  # --server s1
        assert "\x1b[" not in first  # no terminal codes in a log
        time.sleep(0.5)  # several looks at an unchanged store print nothing more
        ready, _, _ = select.select([fd], [], [], 0)
        assert not ready, os.read(fd, 65536)

        report_every_entry(LocalStore(store_dir), "s1")
        text = read_until(fd, "no report yet  (gone)", seen)
        later = text[len(first) :].splitlines()
        assert any("s1  web/app" in line and "COMPLETE" in line for line in later), later
        assert any(line.endswith("(gone)") and "NEVER REPORTED" in line for line in later)
        assert all(line[:4].isdigit() and line[19] == "Z" for line in later)  # timestamped
        assert len(later) == 2, later
    finally:
        code = interrupt(proc)
        _out, err = proc.communicate()  # and closes the pipes
    assert code == 0
    assert b"Traceback" not in err


def test_watch_on_a_terminal_redraws_and_ctrl_c_exits_0(store_dir: Path) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        watch_command(store_dir, "--deployment", "app"),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    try:
        seen = bytearray()
        text = read_until(leader, "every 0.1s: setpoint status --deployment app", seen)
        text = read_until(leader, "SERVER  DEPLOYMENT", seen)
        assert "\x1b[H\x1b[2J" in text  # the screen is cleared and drawn again
        report_every_entry(LocalStore(store_dir), "s2")
        text = read_until(leader, "COMPLETE", seen)
        assert text.count("\x1b[H\x1b[2J") >= 2
    finally:
        code = interrupt(proc)
        os.close(leader)
    assert code == 0


def test_watch_json_prints_one_object_per_changed_row(store_dir: Path) -> None:
    proc = subprocess.Popen(
        watch_command(store_dir, "--server", "s1", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        fd, seen = proc.stdout.fileno(), bytearray()
        first = read_lines_until(fd, '"NEVER REPORTED"', seen)
        records = [json.loads(line) for line in first.splitlines()]
        by_status = {r["status"]: r for r in records}
        assert set(by_status) == {"PENDING", "NEVER REPORTED"}, records
        app = by_status["PENDING"]
        assert (app["server"], app["deployment"], app["gone"]) == ("s1", "web/app", False)
        assert re.fullmatch(r"blake3:[0-9a-f]{64}", app["desired"])  # the full digest
        assert (app["generation"], app["reported_generation"]) == (1, None)
        assert by_status["NEVER REPORTED"]["note"] == "no report yet"
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["time"]) for r in records)
        time.sleep(0.5)  # several looks at an unchanged store print nothing more
        ready, _, _ = select.select([fd], [], [], 0)
        assert not ready, os.read(fd, 65536)

        report_every_entry(LocalStore(store_dir), "s1")
        text = read_lines_until(fd, '"gone": true', seen)
        later = [json.loads(line) for line in text[len(first) :].splitlines()]
        assert len(later) == 2, later
        complete, gone = sorted(later, key=lambda r: r["gone"])
        assert (complete["status"], complete["reported"]) == ("COMPLETE", app["desired"])
        assert (gone["status"], gone["deployment"]) == ("NEVER REPORTED", "(agent)")
    finally:
        code = interrupt(proc)
        _out, err = proc.communicate()  # and closes the pipes
    assert code == 0
    assert b"Traceback" not in err


def test_watch_is_not_for_exit_code(store_dir: Path) -> None:
    assert main(["status", "--store", str(store_dir), "--watch", "--exit-code"]) == 64
