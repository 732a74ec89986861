"""Preflight and drift with the real tools: check mode changes nothing, says what
would change, and a check that would fail is a preflight failure.

Needs puppet, ansible-core and salt (``.ci/install-tools.sh``): skipped without
them, failed when CI=true.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from agenttest import Deploy, Publisher
from tooltest import attach_file, put_tool_on_path, report, require_tool, tool_config

from setpoint.agentshim.agent import Agent
from setpoint.store import CheckReport
from setpoint.store.memory import MemoryStore

PUPPET = """\
file { $facts['target']:
  content => "managed by puppet for ${facts['who']}\\n",
}
"""
ANSIBLE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: the managed file
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "managed by ansible for {{ who }}\\n"
"""
ANSIBLE_MISSING_PACKAGE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: a package no repository has
      ansible.builtin.package:
        name: setpoint-no-such-package-xyz
        state: present
"""
# Generous: the tools start slowly on a loaded machine, and a timeout is a failed check.
TIMEOUT = 300.0
SALT = """\
managed:
  file.managed:
    - name: {{ pillar['target'] }}
    - contents: managed by salt for {{ pillar['who'] }}
"""


def preflight(store: MemoryStore, name: str = "app/web") -> CheckReport:
    got = store.read_report("web1")
    assert got is not None
    return got.preflight[name]


def drift(store: MemoryStore, name: str = "app/web") -> CheckReport:
    got = store.read_report("web1")
    assert got is not None
    return got.drift[name]


@pytest.fixture
def puppet(monkeypatch: pytest.MonkeyPatch) -> None:
    put_tool_on_path(monkeypatch, require_tool("puppet", "apt-get install puppet"))


@pytest.fixture
def ansible(monkeypatch: pytest.MonkeyPatch) -> None:
    put_tool_on_path(monkeypatch, require_tool("ansible-playbook", "pip install ansible-core"))


@pytest.fixture
def salt(monkeypatch: pytest.MonkeyPatch) -> None:
    put_tool_on_path(monkeypatch, require_tool("salt-call", "pip install salt"))


def managed(tool: str, body: str, target: Path, who: str) -> Deploy:
    return Deploy(
        tool_config(tool, body, values={"who": who, "target": str(target)}), timeout=TIMEOUT
    )


@pytest.mark.parametrize(
    ("tool", "body", "says"),
    [
        ("puppet", PUPPET, "should be 'file' (noop)"),
        ("ansible", ANSIBLE, "+managed by ansible for alice"),
        ("salt", SALT, "is set to be changed"),
    ],
)
def test_preflight_changes_nothing_and_says_what_would_change(
    tool: str,
    body: str,
    says: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    request.getfixturevalue(tool)
    target = tmp_path / "managed.txt"
    publisher.publish({}, preflight={"app/web": managed(tool, body, target, "alice")})
    assert make_agent().run_once().exit_code == 0
    checked = preflight(store)
    assert checked.status == "PASSED", checked.reason
    assert says in checked.changes
    assert not target.exists()
    got = store.read_report("web1")
    assert got is not None
    assert got.deployments == {}


def test_preflight_of_an_update_says_what_the_update_would_change(
    puppet: None,
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    target = tmp_path / "managed.txt"
    applied = managed("puppet", PUPPET, target, "alice")
    publisher.publish({"app/web": applied})
    agent = make_agent()
    assert agent.run_once().exit_code == 0
    assert target.read_text() == "managed by puppet for alice\n"

    new = managed("puppet", PUPPET, target, "bob")
    publisher.publish({"app/web": applied}, preflight={"app/web": new})
    assert agent.run_once().exit_code == 0
    checked = preflight(store)
    assert (checked.status, checked.config) == ("PASSED", publisher.digests["app/web"])
    assert "content: current_value" in checked.changes
    # The diff, its headers without times or puppet's temporary file name.
    assert f"--- {target}\n+++ (what the manifest says)\n" in checked.changes
    assert "-managed by puppet for alice\n+managed by puppet for bob" in checked.changes
    assert target.read_text() == "managed by puppet for alice\n"


def test_a_manifest_syntax_error_is_a_preflight_failure(
    puppet: None,
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    broken = tool_config("puppet", "file { 'x': \n", values={"target": str(tmp_path / "x")})
    publisher.publish({}, preflight={"app/web": Deploy(broken, timeout=TIMEOUT)})
    assert make_agent().run_once().exit_code == 0
    checked = preflight(store)
    assert checked.status == "FAILED"
    assert checked.reason is not None
    assert "Syntax error" in checked.reason


def test_a_missing_package_is_a_preflight_failure(
    ansible: None, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    missing = Deploy(tool_config("ansible", ANSIBLE_MISSING_PACKAGE), timeout=TIMEOUT)
    publisher.publish({}, preflight={"app/web": missing})
    assert make_agent().run_once().exit_code == 0
    checked = preflight(store)
    assert checked.status == "FAILED"
    assert checked.reason is not None
    assert "setpoint-no-such-package-xyz" in checked.reason


@pytest.mark.parametrize(
    ("tool", "body"), [("puppet", PUPPET), ("ansible", ANSIBLE), ("salt", SALT)]
)
def test_a_file_changed_by_hand_is_drift(
    tool: str,
    body: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    request.getfixturevalue(tool)
    target = tmp_path / "managed.txt"
    publisher.publish({"app/web": managed(tool, body, target, "alice")})
    agent = make_agent(drift_interval=60.0)
    assert agent.run_once().exit_code == 0
    applied = target.read_text()
    agent.ctx.clock.advance(70.0)  # type: ignore[attr-defined]
    agent.run_once()  # the first check, one interval after the apply
    assert drift(store).status == "clean"

    target.write_text("changed by hand\n")
    agent.ctx.clock.advance(70.0)  # type: ignore[attr-defined]
    assert agent.run_once().exit_code == 0
    found = drift(store)
    assert (found.status, found.count) == ("drifted", 1)
    assert str(target) in found.changes or "managed" in found.changes
    # A check changes nothing: the file stays as the hand left it.
    assert target.read_text() == "changed by hand\n" != applied


def test_an_unchanged_drift_result_writes_no_report(
    puppet: None,
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    publisher.publish({"app/web": managed("puppet", PUPPET, tmp_path / "m.txt", "alice")})
    agent = make_agent(drift_interval=60.0, heartbeat=None)
    agent.run_once()
    agent.ctx.clock.advance(70.0)  # type: ignore[attr-defined]
    agent.run_once()  # the first check: clean, written once
    store.stats.reset()
    agent.ctx.clock.advance(70.0)  # type: ignore[attr-defined]
    agent.run_once()
    assert drift(store).status == "clean"
    assert store.stats.requests["put"] == 0


def with_motd(store: MemoryStore, script: str) -> dict[str, object]:
    """A script config with a file ``motd`` ("hello") attached."""
    return tool_config("script", script, files={"motd": attach_file(store, b"hello\n")})


def test_an_attached_file_changed_on_the_server_is_drift_without_running_a_tool(
    tmp_path: Path, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    ran = tmp_path / "ran"
    config = with_motd(store, f"#!/bin/sh\necho run >> {ran}\n")
    publisher.publish({"app/web": config})
    agent = make_agent(drift_interval=60.0)
    agent.run_once()
    agent.ctx.clock.advance(70.0)  # type: ignore[attr-defined]
    agent.run_once()
    assert drift(store).status == "unknown"  # a script without CHECK cannot tell
    files = agent.layout.files_dir(publisher.digests["app/web"])
    (files / "motd").write_text("edited\n")
    agent.ctx.clock.advance(70.0)  # type: ignore[attr-defined]
    agent.run_once()
    found = drift(store)
    assert found.status == "drifted"
    assert "attached file 'motd' differs" in found.changes
    assert ran.read_text() == "run\n"


def test_a_correction_runs_with_the_attached_files_the_digest_names(
    tmp_path: Path, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    out = tmp_path / "out"
    config = with_motd(store, f'#!/bin/sh\ncat "$setpoint_files_dir/motd" > {out}\n')
    publisher.publish({"app/web": config})
    agent = make_agent()
    agent.run_once()
    files = agent.layout.files_dir(publisher.digests["app/web"])
    (files / "motd").write_text("edited\n")
    # on_drift: correct asks for the UPDATE of the same digest once more.
    publisher.publish({"app/web": Deploy(config, run=("UPDATE", "drift-1"))})
    agent.run_once()
    assert report(store).token == "drift-1"
    assert out.read_text() == "hello\n"
    assert (files / "motd").read_text() == "hello\n"
