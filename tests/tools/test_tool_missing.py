"""A tool that is not installed fails the deployment: never an empty success."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from agenttest import Publisher
from tooltest import isolated_path, report, tool_config

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.tools import BUILTIN_TOOLS, summaries
from setpoint.store.memory import MemoryStore


@pytest.mark.parametrize(
    ("tool", "config", "reason"),
    [
        (
            "ansible",
            "- hosts: all\n  tasks: []\n",
            "ansible-playbook not found on this server (install ansible-core)",
        ),
        (
            "puppet",
            "notice('hi')\n",
            "puppet not found on this server (install puppet or puppet-agent)",
        ),
        (
            "salt",
            "x: {test.nop: []}\n",
            "salt-call not found on this server (install salt)",
        ),
        (
            "chef",
            '["recipe[a]"]',
            "chef-client not found on this server (install Chef Infra Client or Cinc Client)",
        ),
        (
            "docker-compose",
            "services: {}\n",
            "docker compose not found on this server "
            "(install docker with the compose plugin, or docker-compose)",
        ),
    ],
)
def test_a_missing_tool_fails_with_not_found(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    tool: str,
    config: str,
    reason: str,
) -> None:
    monkeypatch.setenv("PATH", isolated_path(tmp_path, "sh"))
    publisher.publish({"app/web": tool_config(tool, config, outputs=("x",))})
    result = make_agent().run_once()
    dep = report(store)
    assert (dep.status, dep.reason, dep.outputs) == ("FAILED", reason, {})
    assert result.exit_code == 1


def test_every_builtin_tool_says_what_it_passes() -> None:
    assert (
        set(summaries())
        == set(BUILTIN_TOOLS)
        == {
            "script",
            "ansible",
            "puppet",
            "salt",
            "chef",
            "docker-compose",
        }
    )
    assert all(summaries().values())
