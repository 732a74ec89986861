"""``setpoint init``, then the commands it prints, run as printed: agents as real
processes, a reconcile that waits for them, a status that shows them converged."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_init_then_the_printed_commands_converge(tmp_path: Path) -> None:
    # The commands name `setpoint` and `setpoint-agent` as an operator types them:
    # found on PATH, here this interpreter's environment.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    made = subprocess.run(
        ["setpoint", "init", "fleet"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    printed = made.stdout.split("deploy it:\n", 1)[1].splitlines()
    assert printed[0].strip() == "cd fleet"
    agents_cmd, reconcile_cmd, status_cmd = (line.strip() for line in printed[1:4])
    assert agents_cmd.endswith(" &")
    fleet = tmp_path / "fleet"

    agents = subprocess.Popen(
        shlex.split(agents_cmd[:-2]),  # the shell's "&": this process runs in the background
        cwd=fleet,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
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
    finally:
        agents.terminate()  # the script's trap stops every agent it started
        agents.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):  # anything left of this test's group
            os.killpg(agents.pid, signal.SIGKILL)
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
