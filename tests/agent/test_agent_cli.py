"""setpoint-agent as a program: flags, exit codes, signals, a kill mid-run, imports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from agenttest import SERVER, Clock, Publisher, lines, script

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.cli import main
from setpoint.agentshim.state import Layout, locked
from setpoint.store import DeploymentReport, Report
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def agent_argv(store_dir: Path, state_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agentshim",
        "--store",
        str(store_dir),
        "--server",
        SERVER,
        "--state-dir",
        str(state_dir),
        "--log-format",
        "json",
        "--allow-unsigned",
        *extra,
    ]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def in_progress_with_pid(store: LocalStore, state_dir: Path) -> bool:
    report = store.read_report(SERVER)
    if report is None or "app/web" not in report.deployments:
        return False
    if report.deployments["app/web"].status != "IN_PROGRESS":
        return False
    try:
        state = json.loads((state_dir / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return False
    return bool(state["in_flight"] and state["in_flight"]["pid"])


def hook_running(store: LocalStore, state_dir: Path, tmp_path: Path) -> bool:
    """The run is IN_PROGRESS and the hook has written its process id (the agent
    reports IN_PROGRESS before the hook's shell gets to its first line)."""
    return in_progress_with_pid(store, state_dir) and (tmp_path / "leader").exists()


def web(store: LocalStore) -> DeploymentReport:
    report = store.read_report(SERVER)
    assert report is not None
    return report.deployments["app/web"]


def sleepy_first_run(tmp_path: Path) -> str:
    """Sleeps the first time (long enough to be killed), completes the next time."""
    first, leader, runs = tmp_path / "first", tmp_path / "leader", tmp_path / "runs"
    return (
        f"echo run >> {runs}\n"
        f"if [ ! -e {first} ]; then echo $$ > {leader}.new; mv {leader}.new {leader}; "
        f"touch {first}; sleep 30; fi\n"
        "echo done\n"
    )


@pytest.mark.e2e
def test_killed_mid_run_the_run_counts_as_failed_and_reruns(tmp_path: Path) -> None:
    store_dir, state_dir = tmp_path / "store", tmp_path / "state"
    store = LocalStore(store_dir)
    Publisher(store).publish({"app/web": script(sleepy_first_run(tmp_path))})

    proc = subprocess.Popen(
        agent_argv(store_dir, state_dir, "--once"),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: hook_running(store, state_dir, tmp_path), "the hook to be running")
    finally:
        proc.kill()
        proc.wait()
    leader = int((tmp_path / "leader").read_text())
    assert not process_gone(leader), "the hook runs in its own session: it outlives the agent"

    again = subprocess.run(
        agent_argv(store_dir, state_dir, "--once"),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    events = [json.loads(line)["event"] for line in again.stderr.splitlines()]
    assert "run_interrupted" in events
    assert "leftover_hook_killed" in events
    assert lines(tmp_path / "runs") == ["run", "run"]
    dep = web(store)
    assert (dep.status, dep.attempts, dep.stdout_tail) == ("COMPLETE", 2, "done\n")
    wait_for(lambda: process_gone(leader), "the leftover hook to be killed")


@pytest.mark.e2e
def test_sigterm_in_loop_mode_aborts_the_hook_and_exits_cleanly(tmp_path: Path) -> None:
    store_dir, state_dir = tmp_path / "store", tmp_path / "state"
    store = LocalStore(store_dir)
    Publisher(store).publish({"app/web": script(sleepy_first_run(tmp_path))})
    proc = subprocess.Popen(
        agent_argv(store_dir, state_dir, "--interval", "0.2"),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: hook_running(store, state_dir, tmp_path), "the hook to be running")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines()]
    assert events[-1] == "agent_stopped"
    assert "deployment_aborted" in events
    leader = int((tmp_path / "leader").read_text())
    wait_for(lambda: process_gone(leader), "the hook's process group to be killed")
    dep = web(store)
    assert dep.status == "FAILED"
    assert dep.reason is not None
    assert "aborted: the agent was stopping" in dep.reason
    assert dep.final is False
    state = json.loads((state_dir / "state.json").read_text())
    assert state["in_flight"] is None

    # An abort is not the config's fault: the next start runs it at once, as attempt 1.
    done = subprocess.run(
        agent_argv(store_dir, state_dir, "--once"),
        env=cli_env(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert (web(store).status, web(store).attempts) == ("COMPLETE", 1)


def test_the_agent_imports_nothing_heavy() -> None:
    code = (
        "import sys, json, agentshim.cli, agentshim.agent\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=cli_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(out.stdout))
    assert "agentshim" in loaded
    assert not loaded & {"dulwich", "watchdog", "boto3", "botocore", "controller", "yaml"}


# -- in-process: flags and exit codes ----------------------------------------------------


def run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_help_teaches_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["--help"]) == 0
    out = capsys.readouterr().out
    for phrase in ("--retry-backoff", "anti-rollback", "DELETE", "deploy_status_code", "64"):
        assert phrase in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--store", "x", "--server", SERVER, "--allow-unsigned"],
        ["--store", "x", "--server", SERVER, "--state-dir", "s"],  # no trusted key
        ["--store", "x", "--server", SERVER, "--state-dir", "s", "--trusted-key", "k:bad"],
        ["--store", "x", "--server", "../etc", "--state-dir", "s", "--allow-unsigned"],
        ["--store", "x", "--server", SERVER, "--state-dir", "s", "--interval", "0"],
        ["--store", "x", "--server", SERVER, "--state-dir", "s", "--max-attempts", "0"],
        ["--store", "x", "--server", SERVER, "--state-dir", "s", "--retry-backoff", "-1"],
        ["--store", "x", "--server", SERVER, "--state-dir", "s", "--log-format", "xml"],
        ["--store", "s3://bucket", "--server", SERVER, "--state-dir", "s", "--allow-unsigned"],
        ["--bootstrap", "missing.json", "--state-dir", "s"],
        ["--bootstrap", "b.json", "--store", "x", "--state-dir", "s"],
    ],
)
def test_usage_errors_exit_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(argv) == 64
    assert "error:" in capsys.readouterr().err


def once(tmp_path: Path, *extra: str) -> int:
    return run_main(
        [
            "--store",
            str(tmp_path / "store"),
            "--server",
            SERVER,
            "--state-dir",
            str(tmp_path / "state"),
            "--once",
            "--allow-unsigned",
            *extra,
        ]
    )


def test_once_exit_codes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    assert once(tmp_path) == 0  # no pointer yet: nothing to do
    publisher = Publisher(store)
    publisher.publish({"app/web": script("true")})
    assert once(tmp_path) == 0
    publisher.publish({"app/web": script("exit 1")})
    assert once(tmp_path, "--max-attempts", "1") == 1
    report = store.read_report(SERVER)
    assert report is not None
    assert report.deployments["app/web"].final is True


def test_once_with_a_drift_interval_checks_when_due(tmp_path: Path) -> None:
    """Each ``--once`` is a new process: when a config was applied and last
    checked is kept in the state dir, so a later run checks once it is due."""
    store = LocalStore(tmp_path / "store")
    Publisher(store).publish({"app/web": script("true")})
    assert once(tmp_path, "--drift-interval", "0.2") == 0  # applies
    report = store.read_report(SERVER)
    assert report is not None
    assert report.drift == {}  # a config just applied needs no check yet
    time.sleep(0.3)  # past 0.2 s +10%
    assert once(tmp_path, "--drift-interval", "0.2") == 0
    report = store.read_report(SERVER)
    assert report is not None
    assert report.drift["app/web"].status == "unknown"  # a script without CHECK


def test_once_exits_3_when_the_store_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "store" / "agents" / SERVER / "pointer").mkdir(parents=True)
    assert once(tmp_path) == 3


def test_a_second_agent_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    with locked(Layout(tmp_path / "state")):
        assert once(tmp_path) == 3


def test_hooks_dir_flag(tmp_path: Path) -> None:
    hooks = tmp_path / "myhooks"
    hooks.mkdir()
    (hooks / "echo").write_text("#!/bin/sh\necho '{\"answer\": 42}'\n")
    (hooks / "echo").chmod(0o755)
    store = LocalStore(tmp_path / "store")
    doc = script("")
    doc["group"] = "echo"
    Publisher(store).publish({"app/web": doc})
    assert once(tmp_path, "--hooks-dir", str(hooks)) == 0
    assert web(store).outputs == {"answer": 42}


# -- the loop ----------------------------------------------------------------------------


def test_run_forever_jitters_and_stops(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], clock: Clock
) -> None:
    import threading

    stop = threading.Event()
    cycles: list[float] = []

    def sleep(seconds: float) -> None:
        cycles.append(seconds)
        clock.advance(seconds)
        if len(cycles) == 50:
            stop.set()

    publisher.publish({"app/web": script("true")})
    agent = make_agent(sleep=sleep)
    agent.run_forever(10.0, stop)
    assert len(cycles) == 50
    assert all(9.0 <= s <= 11.0 for s in cycles)
    assert len(set(cycles)) > 1
    report: Report | None = store.read_report(SERVER)
    assert report is not None
    assert report.deployments["app/web"].status == "COMPLETE"


def test_run_forever_wakes_up_for_a_due_retry_and_survives_crashes(
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    clock: Clock,
    tmp_path: Path,
) -> None:
    import threading

    stop = threading.Event()
    slept: list[float] = []
    runs = tmp_path / "runs"

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) == 4:
            stop.set()

    publisher.publish({"app/web": script(f"echo x >> {runs}; exit 1")})
    agent = make_agent(sleep=sleep, retry_backoff=2.0, max_attempts=3)
    original = agent.run_once
    calls: list[int] = []

    def flaky_once() -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("bug")
        return original()

    agent.run_once = flaky_once  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        agent.run_forever(60.0, stop)
    assert slept[0] == pytest.approx(2.0)  # woke for the retry, not after 60 s
    assert "cycle_crashed" in [e["event"] for e in logs]
    assert len(lines(runs)) == 3
