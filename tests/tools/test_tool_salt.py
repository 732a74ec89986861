"""The built-in salt tool, run through the agent with the real ``salt-call --local``.

Needs salt (``pip install salt``, ``.ci/install-tools.sh``): skipped without it,
failed when CI=true.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agenttest import Publisher
from tooltest import attach_file, put_tool_on_path, report, require_tool, tool_config

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore

STATE = """\
motd:
  file.managed:
    - name: {{ pillar['target'] }}
    - source: salt://motd.jinja
    - template: jinja
greeting:
  file.managed:
    - name: {{ pillar['heat_outputs_path'] }}.greeting
    - contents: "hello {{ pillar['who'] }} from {{ pillar['deploy_action'] }} on {{ grains['id'] }}"
"""
TEMPLATE = b"Welcome, {{ pillar['who'] }}! Next port: {{ pillar['port'] + 1 }}\n"


@pytest.fixture(autouse=True)
def salt_call(monkeypatch: pytest.MonkeyPatch) -> Path:
    found = require_tool("salt-call", "pip install salt")
    put_tool_on_path(monkeypatch, found)
    return found


def motd_config(store: MemoryStore, target: Path, who: str) -> dict[str, Any]:
    return tool_config(
        "salt",
        STATE,
        values={"who": who, "port": 8080, "target": str(target)},
        outputs=("greeting",),
        files={"motd.jinja": attach_file(store, TEMPLATE)},
    )


def test_deploy_then_update_with_a_changed_input(
    tmp_path: Path, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    target = tmp_path / "motd"
    publisher.publish({"app/web": motd_config(store, target, "alice")})
    agent = make_agent()
    assert agent.run_once().exit_code == 0, report(store).reason
    dep = report(store)
    assert (dep.status, dep.action, dep.exit_code) == ("COMPLETE", "CREATE", 0)
    assert target.read_text() == "Welcome, alice! Next port: 8081\n"
    assert dep.outputs == {"greeting": "hello alice from CREATE on web1"}

    publisher.publish({"app/web": motd_config(store, target, "bob")})
    assert agent.run_once().exit_code == 0, report(store).reason
    dep = report(store)
    assert (dep.status, dep.action) == ("COMPLETE", "UPDATE")
    assert target.read_text() == "Welcome, bob! Next port: 8081\n"
    assert dep.outputs == {"greeting": "hello bob from UPDATE on web1"}
    # The per-state results are on stdout.
    results = json.loads(agent.layout.log_path("app/web", "stdout").read_text())["local"]
    assert all(state["result"] for state in results.values())


def test_a_failing_state_fails_with_its_comment(
    tmp_path: Path, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    state = f"""\
fine:
  file.managed:
    - name: {tmp_path}/fine
    - contents: ok
broken:
  file.managed:
    - name: /nonexistent/setpoint-test/x
    - contents: x
"""
    publisher.publish({"app/web": tool_config("salt", state)})
    assert make_agent().run_once().exit_code == 1
    dep = report(store)
    assert dep.status == "FAILED"
    assert dep.reason == "salt state 'broken' failed: Parent directory not present"
    assert (tmp_path / "fine").read_text() == "ok\n"


def test_several_failing_states_are_counted(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    state = """\
first:
  cmd.run:
    - name: "false"
second:
  no_such.state:
    - name: x
"""
    publisher.publish({"app/web": tool_config("salt", state)})
    make_agent().run_once()
    dep = report(store)
    assert dep.reason == "2 salt states failed, first state 'first' failed: Command \"false\" run"


def test_a_render_error_fails_with_salt_s_message(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    state = "x:\n  file.managed:\n    - name: {{ pillar['no_such_input'] }}\n"
    publisher.publish({"app/web": tool_config("salt", state)})
    make_agent().run_once()
    dep = report(store)
    assert dep.status == "FAILED"
    assert dep.reason is not None
    assert dep.reason.startswith("salt-call: Rendering SLS 'base:setpoint_"), dep.reason
    assert "no_such_input" in dep.reason


def test_inputs_are_a_pillar_file_not_arguments(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    state = {
        "out": {
            "file.managed": [
                {"name": "{{ pillar['heat_outputs_path'] }}.seen"},
                {"contents": "{{ pillar['secret'] }} {{ pillar['doc']['k'][1] }}"},
            ]
        }
    }
    derived = tool_config(
        "salt",
        state,
        values={"secret": "s3cr3t {{ not jinja }}", "doc": {"k": [1, 2]}},
        outputs=("seen",),
        options={"log_level": "info"},
    )
    publisher.publish({"app/web": derived})
    agent = make_agent()
    agent.run_once()
    dep = report(store)
    assert dep.status == "COMPLETE", dep.reason
    # Pillar values are data: a value that looks like jinja is not rendered.
    assert dep.outputs == {"seen": "s3cr3t {{ not jinja }} 2"}
    pillar = agent.layout.work_dir("app/web") / "salt" / "pillar"
    hexd = publisher.digests["app/web"].removeprefix("blake3:")
    assert (pillar / f"setpoint_{hexd}.sls").stat().st_mode & 0o777 == 0o600
