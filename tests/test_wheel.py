"""The built wheel, installed into a fresh virtual environment, runs the demo.

Everything the commands need must be inside the wheel: the example definitions
(``repos-example/`` as the data package ``setpoint.examples``) and the agent,
which the demo starts as ``python -m setpoint.agentshim``. The commands run
from a directory outside the checkout, with nothing of the checkout on
``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
# Not part of the source: environments, caches and earlier build output, which
# setuptools would otherwise pick up from build/.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


def run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work), str(source)],
        work,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (path,) = work.glob("setpoint-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with the wheel and its dependencies (from the index)."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    made = run([sys.executable, "-m", "venv", str(where)], where.parent, timeout=120)
    assert made.returncode == 0, made.stderr
    installed = run(
        [str(where / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        where.parent,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    return where


def test_wheel_holds_only_the_setpoint_namespace(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {"setpoint", "setpoint-0.1.0.dist-info"}
    assert "setpoint/examples/inventory.yaml" in names
    assert "setpoint/examples/components/frontend/site/index.html" in names
    # setpoint serve's templates and static files, read from the package at run time.
    assert "setpoint/controller/dashboard/templates/overview.html" in names
    assert "setpoint/controller/dashboard/static/live.js" in names


def test_installed_demo_runs_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import setpoint.controller; print(*setpoint.controller.__path__)",
        ],
        elsewhere,
        timeout=60,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr

    demo = run(
        [
            str(venv / "bin" / "setpoint"),
            "demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--timeout",
            "60",
        ],
        elsewhere,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "all 4 steps converged" in demo.stdout


def test_installed_agent_prints_its_version(venv: Path, tmp_path: Path) -> None:
    agent = run([str(venv / "bin" / "setpoint-agent"), "--version"], tmp_path, timeout=60)
    assert agent.returncode == 0, agent.stderr
    assert agent.stdout == "setpoint-agent 0.1.0\n"
