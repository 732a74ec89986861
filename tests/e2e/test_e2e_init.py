"""``setpoint init``, then the commands it prints, run as printed: agents as real
processes, a reconcile that waits for them, a status that shows them converged."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def setpoint_on_path() -> dict[str, str]:
    """The environment an operator types in: `setpoint` and `setpoint-agent` found on
    PATH, here this interpreter's environment."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def init(where: Path, env: dict[str, str], *args: str) -> list[str]:
    """``setpoint init fleet ARGS`` in ``where``; the commands it prints, after ``cd``."""
    made = subprocess.run(
        ["setpoint", "init", "fleet", *args],
        check=False, cwd=where, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    printed = made.stdout.split("deploy it:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert printed[0].strip() == "cd fleet"
    return [line.strip() for line in printed[1:]]


def agents_sh(fleet: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", ".setpoint/agents.sh", *args],
        check=False, cwd=fleet, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def pids(fleet: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in sorted((fleet / ".setpoint/run").glob("*.pid"))}


def alive(pid: int) -> bool:
    """The process runs (a zombie nobody reaped yet has exited: not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def agent_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@contextlib.contextmanager
def agents_stopped_at_the_end(fleet: Path, env: dict[str, str]) -> Iterator[None]:
    """Stop what the test started, even when it fails half-way."""
    try:
        yield
    finally:
        agents_sh(fleet, env, "stop")
        for pid in pids(fleet).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_init_then_the_printed_commands_converge(tmp_path: Path) -> None:
    env = setpoint_on_path()
    agents_cmd, reconcile_cmd, status_cmd = init(tmp_path, env)
    assert agents_cmd == "sh .setpoint/agents.sh start"  # returns: no '&', no job to kill
    fleet = tmp_path / "fleet"
    with agents_stopped_at_the_end(fleet, env):
        started = subprocess.run(
            shlex.split(agents_cmd),
            check=False, cwd=fleet, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        deployed = subprocess.run(
            [*shlex.split(reconcile_cmd), "--timeout", "60"],
            check=False, cwd=fleet, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "2/2 servers converged" in deployed.stdout
        status = subprocess.run(
            shlex.split(status_cmd), check=False, cwd=fleet, env=env, capture_output=True, text=True
        )
        assert status.returncode == 0, status.stderr
        rows = [line.split() for line in status.stdout.splitlines()[1:3]]
        assert [(r[0], r[1], r[4]) for r in rows] == [
            ("web-1", "hello/hello", "COMPLETE"),
            ("web-2", "hello/hello", "COMPLETE"),
        ]
        # The script ran with the attached file where $setpoint_files_dir said.
        greeting = fleet / ".setpoint/servers/web-1/work/hello/hello/greeting.txt"
        assert greeting.read_text().splitlines() == [
            "Hello, web-1!",
            "This server is configured by setpoint: edit the repository, not this file.",
        ]
    # The key and the store are not part of the repository.
    tracked = subprocess.run(
        [sys.executable, "-c", "from dulwich import porcelain; import sys;"
         "print('\\n'.join(p.decode() for p in porcelain.ls_files(sys.argv[1])))", str(fleet)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert sorted(tracked) == [
        ".gitignore",
        "components/hello/banner.txt",
        "components/hello/component.yaml",
        "components/hello/configure.sh",
        "inventory.yaml",
        "stacks/hello.yaml",
    ]


def test_agents_sh_starts_shows_and_stops_the_agents(tmp_path: Path) -> None:
    env = setpoint_on_path()
    init(tmp_path, env, "--servers", "a-1,a-2,a-3")
    fleet = tmp_path / "fleet"
    with agents_stopped_at_the_end(fleet, env):
        before = agents_sh(fleet, env, "status")
        assert (before.returncode, before.stdout) == (3, "a-1: not running\na-2: not running\n"
                                                          "a-3: not running\n")  # fmt: skip

        started = agents_sh(fleet, env, "start")
        assert started.returncode == 0, started.stdout + started.stderr
        running = pids(fleet)
        assert sorted(running) == ["a-1", "a-2", "a-3"]
        for server, pid in running.items():
            assert alive(pid)
            assert f"setpoint-agent --bootstrap .setpoint/agents/{server}.json" in agent_of(pid)
            assert f"{server}: started (pid {pid}, log .setpoint/logs/{server}.log)" in (
                started.stdout
            )
        status = agents_sh(fleet, env, "status")
        assert status.returncode == 0
        assert status.stdout == "".join(f"{s}: running (pid {p})\n" for s, p in running.items())
        # Started twice, an agent is not started again (it would find its state locked).
        again = agents_sh(fleet, env, "start")
        assert again.returncode == 0
        assert f"a-1: already running (pid {running['a-1']})" in again.stdout
        assert pids(fleet) == running
        # The agents are working: each reports a heartbeat to the store.
        store = fleet / ".setpoint/store/agents"
        deadline = time.monotonic() + 30
        while not all((store / s / "report").exists() for s in running):
            assert time.monotonic() < deadline, list(store.rglob("*"))
            time.sleep(0.2)

        stopped = agents_sh(fleet, env, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert stopped.stdout == "".join(f"{s}: stopping (pid {p})\n" for s, p in running.items())
        assert not any(alive(pid) for pid in running.values())  # stop waited for them
        assert pids(fleet) == {}
        for server in running:
            assert "agent_stopped" in (fleet / f".setpoint/logs/{server}.log").read_text()
        assert agents_sh(fleet, env, "status").returncode == 3
        assert agents_sh(fleet, env, "stop").stdout.count("not running") == 3


def test_agents_sh_never_signals_a_stranger_behind_a_stale_pid_file(tmp_path: Path) -> None:
    """After a crash or a reboot, a pid file may name someone else's process."""
    env = setpoint_on_path()
    init(tmp_path, env, "--servers", "a-1")
    fleet = tmp_path / "fleet"
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (fleet / ".setpoint/run").mkdir()
        (fleet / ".setpoint/run/a-1.pid").write_text(f"{stranger.pid}\n")
        assert agents_sh(fleet, env, "status").stdout == "a-1: not running\n"
        assert agents_sh(fleet, env, "stop").stdout == "a-1: not running\n"
        assert stranger.poll() is None  # not signalled
        with agents_stopped_at_the_end(fleet, env):
            started = agents_sh(fleet, env, "start")
            assert started.returncode == 0, started.stdout + started.stderr
            assert pids(fleet)["a-1"] != stranger.pid
    finally:
        stranger.kill()
        stranger.wait()


def test_an_agent_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    env = setpoint_on_path()
    init(tmp_path, env, "--servers", "a-1,a-2")
    fleet = tmp_path / "fleet"
    (fleet / ".setpoint/agents/a-2.json").write_text("not a bootstrap\n")
    with agents_stopped_at_the_end(fleet, env):
        started = agents_sh(fleet, env, "start")
        assert started.returncode == 1
        assert "a-1: started (pid" in started.stdout
        assert "a-2: exited at once; the end of .setpoint/logs/a-2.log:" in started.stderr
        assert "1 agent did not start" in started.stderr
        assert sorted(pids(fleet)) == ["a-1"]
