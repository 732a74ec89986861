"""Helpers for the tool tests: real tools (skip or fail), stand-ins, configs, reports.

Real tools: ``require_tool`` finds one on PATH or beside this Python (the
virtual environment .ci/install-tools.sh installs into). Without it a test is
skipped locally but FAILS when ``CI`` is ``true``: CI never silently skips them.

Stand-ins (for chef and docker compose, which cannot run here): an executable
first on PATH that records each call (arguments, environment, working dir and the
files it was given) and behaves as the test says (status, stdout, stderr, output
files to write).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agenttest import SERVER

from setpoint.store import DeploymentReport
from setpoint.store.bundles import files_tree_digest, make_zip
from setpoint.store.memory import MemoryStore


def unavailable(message: str) -> None:
    """Skip the test, or fail it when CI=true (CI must never silently skip)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: install it, see .ci/install-tools.sh)", pytrace=False)
    pytest.skip(message)


def require_tool(command: str, install: str) -> Path:
    """The real tool's executable (on PATH or in this Python's bin dir)."""
    found = shutil.which(command) or shutil.which(command, path=str(Path(sys.executable).parent))
    if found is None:
        unavailable(f"{command} is not installed ({install})")
        raise AssertionError("unreachable")
    return Path(found)


def put_tool_on_path(monkeypatch: pytest.MonkeyPatch, executable: Path) -> None:
    """The agent passes its PATH to the tools: make it find ``executable``."""
    monkeypatch.setenv("PATH", f"{executable.parent}{os.pathsep}{os.environ.get('PATH', '')}")


def report(store: MemoryStore, name: str = "app/web") -> DeploymentReport:
    got = store.read_report(SERVER)
    assert got is not None
    return got.deployments[name]


def inputs(**values: Any) -> list[dict[str, Any]]:
    return [{"name": name, "type": "String", "value": value} for name, value in values.items()]


def tool_config(
    tool: str,
    config: Any,
    *,
    values: Mapping[str, Any] | None = None,
    outputs: tuple[str, ...] = (),
    options: Mapping[str, Any] | None = None,
    files: Mapping[str, Any] | None = None,
    actions: tuple[str, ...] = ("CREATE", "UPDATE"),
    delete: Any = None,
) -> dict[str, Any]:
    """A component's derived config: ``config`` for ``actions`` (and ``delete`` for
    DELETE when given), run by ``tool``."""
    configs = [{"actions": list(actions), "tool": tool, "config": config}]
    if delete is not None:
        configs.append({"actions": ["DELETE"], "tool": tool, "config": delete})
    doc: dict[str, Any] = {
        "name": "app",
        "group": "component",
        "config": {"configs": configs},
        "inputs": inputs(**dict(values or {})),
        "outputs": [{"name": n} for n in outputs],
        "options": dict(options or {}),
    }
    if files:
        doc["files"] = dict(files)
    return doc


def attach_file(store: MemoryStore, data: bytes, executable: bool = False) -> dict[str, Any]:
    """A file attached to a config (its blob put in the store)."""
    return {"type": "file", "digest": store.put_blob(data), "executable": executable}


def attach_dir(
    store: MemoryStore, entries: list[tuple[str, int, bytes]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A directory attached to a config, and the manifest's bundle for it."""
    tree = files_tree_digest(entries)
    return {"type": "directory", "digest": tree}, {tree: store.put_blob(make_zip(entries))}


# -- stand-ins ---------------------------------------------------------------------------

STAND_IN = """#!{python}
# Stand-in for {name}: records the call, then behaves as {behaviour} says.
import json, os, sys
record, behaviour = {record!r}, {behaviour!r}
argv = sys.argv[1:]
files = {{}}
for flag in {file_flags!r}:
    if flag in argv[:-1]:
        path = argv[argv.index(flag) + 1]
        with open(path) as f:
            files[flag] = f.read()
with open(record, "a") as f:
    f.write(json.dumps({{"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(),
                        "files": files}}) + "\\n")
try:
    with open(behaviour) as f:
        how = json.load(f)
except FileNotFoundError:
    how = {{}}
for prefix, special in how.get("when", {{}}).items():
    if " ".join(argv).startswith(prefix):
        how = special
        break
node = json.loads(files["-j"]) if "-j" in files else {{}}
for name, value in how.get("outputs", {{}}).items():
    if value.startswith("@node:"):
        value = str(node[value[6:]])
    elif value.startswith("@env:"):
        value = os.environ[value[5:]]
    with open(os.environ["heat_outputs_path"] + "." + name, "w") as f:
        f.write(value)
sys.stdout.write(how.get("stdout", ""))
sys.stderr.write(how.get("stderr", ""))
sys.exit(how.get("exit", 0))
"""


@dataclass
class StandIn:
    """An executable ``name`` in ``bin_dir`` that records its calls.

    ``behave(exit=, stdout=, stderr=, outputs=, when=)``: ``outputs`` maps an
    output name to a value written to ``$heat_outputs_path.<name>``, where
    ``@node:<attr>`` takes the attribute from the ``-j`` file and ``@env:<VAR>``
    an environment variable; ``when`` maps an argument prefix to another
    behaviour for the calls it matches.
    """

    bin_dir: Path
    name: str
    file_flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.record = self.bin_dir / f"{self.name}.calls"
        self.behaviour = self.bin_dir / f"{self.name}.behaviour.json"
        self.path = self.bin_dir / self.name
        self.path.write_text(
            STAND_IN.format(
                python=sys.executable,
                name=self.name,
                record=str(self.record),
                behaviour=str(self.behaviour),
                file_flags=self.file_flags,
            )
        )
        self.path.chmod(0o755)

    def behave(self, **how: Any) -> None:
        self.behaviour.write_text(json.dumps(how))

    @property
    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


def isolated_path(tmp_path: Path, *keep: str) -> str:
    """A PATH of one new directory holding links to ``keep`` (e.g. ``sh``), nothing else."""
    bin_dir = tmp_path / "isolated-bin"
    bin_dir.mkdir(exist_ok=True)
    for name in keep:
        found = shutil.which(name)
        assert found is not None, name
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(found)
    return str(bin_dir)
