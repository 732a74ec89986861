"""The built-in puppet tool, run through the agent with the real ``puppet apply``.

Needs puppet (Debian's ``puppet`` package, ``.ci/install-tools.sh``): skipped
without it, failed when CI=true.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agenttest import Publisher
from tooltest import attach_dir, put_tool_on_path, report, require_tool, tool_config

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore

MANIFEST = """\
file { $facts['target']:
  content => epp('motd/motd.epp', { 'who' => $facts['who'], 'port' => Integer($facts['port']) }),
}
file { "${facts['heat_outputs_path']}.greeting":
  content => "hello ${facts['who']} from ${facts['deploy_action']}",
}
"""
TEMPLATE = b"""\
<%- | String $who, Integer $port | -%>
Welcome, <%= $who %>! Next port: <%= $port + 1 %>
"""


@pytest.fixture(autouse=True)
def puppet(monkeypatch: pytest.MonkeyPatch) -> Path:
    found = require_tool("puppet", "apt-get install puppet")
    put_tool_on_path(monkeypatch, found)
    return found


def motd_config(
    store: MemoryStore, target: Path, who: str
) -> tuple[dict[str, Any], dict[str, str]]:
    modules, bundles = attach_dir(store, [("motd/templates/motd.epp", 0o644, TEMPLATE)])
    derived = tool_config(
        "puppet",
        MANIFEST,
        values={"who": who, "port": 8080, "target": str(target)},
        outputs=("greeting",),
        options={"modulepath": "modules"},
        files={"modules": modules},
    )
    return derived, bundles


def test_deploy_then_update_with_a_changed_input(
    tmp_path: Path, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    target = tmp_path / "motd"
    derived, bundles = motd_config(store, target, "alice")
    publisher.publish({"app/web": derived}, bundles=bundles)
    agent = make_agent()
    assert agent.run_once().exit_code == 0, report(store).reason
    dep = report(store)
    # --detailed-exitcodes: 2 means changes were applied, a success.
    assert (dep.status, dep.action, dep.exit_code) == ("COMPLETE", "CREATE", 2)
    assert target.read_text() == "Welcome, alice! Next port: 8081\n"
    assert dep.outputs == {"greeting": "hello alice from CREATE"}
    assert "Applied catalog" in dep.stdout_tail

    derived, bundles = motd_config(store, target, "bob")
    publisher.publish({"app/web": derived}, bundles=bundles)
    assert agent.run_once().exit_code == 0, report(store).reason
    dep = report(store)
    assert (dep.status, dep.action, dep.exit_code) == ("COMPLETE", "UPDATE", 2)
    assert target.read_text() == "Welcome, bob! Next port: 8081\n"
    assert dep.outputs == {"greeting": "hello bob from UPDATE"}


def test_nothing_to_change_is_status_0(
    tmp_path: Path, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    target = tmp_path / "same"
    target.write_text("same\n")
    manifest = f"file {{ '{target}': content => \"same\\n\" }}\n"
    publisher.publish({"app/web": tool_config("puppet", manifest)})
    make_agent().run_once()
    dep = report(store)
    assert (dep.status, dep.exit_code) == ("COMPLETE", 0)


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (
            "file { '/nonexistent/setpoint-test/x': content => 'x' }\n",
            "puppet apply exited with status 4 (failures): Error: "
            "Could not set 'file' on ensure: No such file or directory",
        ),
        (
            "file { 'missing brace':\n",
            "puppet apply exited with status 1 (error): Error: Could not parse",
        ),
    ],
)
def test_a_bad_resource_reports_puppet_s_error(
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    manifest: str,
    reason: str,
) -> None:
    publisher.publish({"app/web": tool_config("puppet", manifest)})
    assert make_agent().run_once().exit_code == 1
    dep = report(store)
    assert dep.status == "FAILED"
    assert dep.reason is not None
    assert dep.reason.startswith(reason), dep.reason
    assert "Error: " in dep.stderr_tail


def test_hiera_data_is_typed_and_facts_can_be_turned_off(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    manifest = """\
$port = lookup('port')
$fact = $facts['who']
$config_name = $facts['deploy_config_name']
file { "${lookup('heat_outputs_path')}.seen":
  content => "${lookup('who')} ${$port + 1} ${lookup('tags')[1]} fact=${fact} ${config_name}",
}
"""
    derived = tool_config(
        "puppet",
        manifest,
        values={"who": "carol", "port": 22, "tags": ["a", "b"]},
        outputs=("seen",),
        options={"enable_hiera": True, "enable_facter": False},
    )
    publisher.publish({"app/web": derived})
    agent = make_agent()
    agent.run_once()
    dep = report(store)
    assert dep.status == "COMPLETE", (dep.reason, dep.stderr_tail)
    assert dep.outputs == {"seen": "carol 23 b fact= app"}
    hexd = publisher.digests["app/web"].removeprefix("blake3:")
    data = json.loads((agent.layout.work_dir("app/web") / f"{hexd}_hiera.json").read_text())
    assert (data["port"], data["tags"]) == (22, ["a", "b"])


def test_tags_limit_what_is_applied(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    manifest = """\
file { "${facts['heat_outputs_path']}.one": content => '1', tag => 'one' }
file { "${facts['heat_outputs_path']}.two": content => '2', tag => 'two' }
"""
    derived = tool_config(
        "puppet", manifest, outputs=("one", "two"), options={"tags": ["one"], "enable_debug": True}
    )
    publisher.publish({"app/web": derived})
    make_agent().run_once()
    dep = report(store)
    assert dep.status == "COMPLETE", dep.reason
    assert dep.outputs == {"one": "1"}
    assert "Debug: " in dep.stdout_tail + dep.stderr_tail
