"""The built-in chef tool, run through the agent against a STAND-IN chef-client.

Chef cannot run here: there is no chef package on the registries this project
can reach. The stand-in (tooltest.StandIn), first on PATH, records the arguments,
the environment and the files it was given (``--config``, ``-j``), and returns
the status, output and output files each test asks for. What is tested is what
the hook hands chef-client, and how it reads chef's result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from agenttest import Deploy, Publisher
from tooltest import StandIn, put_tool_on_path, report, tool_config

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore


@pytest.fixture
def chef(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    stand_in = StandIn(tmp_path / "bin", "chef-client", ("--config", "-j"))
    put_tool_on_path(monkeypatch, stand_in.path)
    return stand_in


def test_run_list_and_node_attributes(
    chef: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    chef.behave(stdout="Chef Infra Client finished\n", outputs={"motd": "@node:motd"})
    derived = tool_config(
        "chef",
        '["recipe[motd]", "role[web]"]',
        values={"motd": "hello", "port": 8080, "environment": "production"},
        outputs=("motd",),
    )
    publisher.publish({"app/web": derived})
    agent = make_agent()
    assert agent.run_once().exit_code == 0, report(store).reason
    dep = report(store)
    assert (dep.status, dep.exit_code, dep.stdout_tail) == (
        "COMPLETE",
        0,
        "Chef Infra Client finished\n",
    )
    assert dep.outputs == {"motd": "hello"}

    (call,) = chef.calls
    argv = call["argv"]
    assert argv[:2] == ["-z", "--no-color"]
    assert argv[argv.index("--config") + 1].endswith("_client.rb")
    # Inputs are node attributes (typed); the deploy_* inputs and the environment are not.
    node = json.loads(call["files"]["-j"])
    assert node == {"motd": "hello", "port": 8080, "run_list": ["recipe[motd]", "role[web]"]}
    client = call["files"]["--config"]
    kitchen = agent.layout.work_dir("app/web") / "kitchen"
    assert "local_mode true\n" in client
    assert f"cookbook_path '{kitchen}/cookbooks'\n" in client
    assert f"role_path '{kitchen}/roles'\n" in client
    assert "environment 'production'\n" in client
    assert "log_level :info\n" in client
    hexd = publisher.digests["app/web"].removeprefix("blake3:")
    assert call["env"]["heat_outputs_path"] == str(agent.layout.outputs / hexd)
    assert call["cwd"] == str(agent.layout.work_dir("app/web"))


def test_update_with_a_changed_input_writes_a_new_node_file(
    chef: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    chef.behave(outputs={"motd": "@node:motd"})
    agent = make_agent()
    for motd in ("one", "two"):
        publisher.publish(
            {
                "app/web": tool_config(
                    "chef", ["recipe[motd]"], values={"motd": motd}, outputs=("motd",)
                )
            }
        )
        agent.run_once()
    first, second = chef.calls
    assert json.loads(first["files"]["-j"])["motd"] == "one"
    assert json.loads(second["files"]["-j"])["motd"] == "two"
    dep = report(store)
    assert (dep.action, dep.status, dep.outputs) == ("UPDATE", "COMPLETE", {"motd": "two"})


def test_chef_failure_reports_its_fatal_line(
    chef: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    chef.behave(
        exit=1,
        stdout="Starting Chef Infra Client\n",
        stderr=(
            "[2024-01-01T00:00:00+00:00] ERROR: Running exception handlers\n"
            "[2024-01-01T00:00:00+00:00] FATAL: Chef::Exceptions::CookbookNotFound: "
            "Cookbook motd not found.\n"
        ),
    )
    publisher.publish({"app/web": tool_config("chef", '["recipe[motd]"]')})
    assert make_agent().run_once().exit_code == 1
    dep = report(store)
    assert dep.status == "FAILED"
    assert dep.reason == (
        "chef-client exited with status 1: [2024-01-01T00:00:00+00:00] FATAL: "
        "Chef::Exceptions::CookbookNotFound: Cookbook motd not found."
    )
    assert "CookbookNotFound" in dep.stderr_tail


def test_kitchen_is_the_attached_files_or_kitchen_path(
    chef: StandIn,
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    derived = tool_config(
        "chef",
        '["recipe[a]"]',
        options={"kitchen_path": str(tmp_path / "k'itchen"), "log_level": "debug"},
    )
    publisher.publish({"app/web": derived})
    make_agent().run_once()
    client = chef.calls[0]["files"]["--config"]
    assert f"cookbook_path '{tmp_path}/k\\'itchen/cookbooks'\n" in client
    assert "log_level :debug\n" in client


@pytest.mark.parametrize(
    ("config", "options", "reason"),
    [
        ("recipe[a]", {}, 'chef config is not a run list (a JSON list such as ["recipe[app]"])'),
        (
            {"run_list": []},
            {},
            'chef config is not a run list (a JSON list such as ["recipe[app]"])',
        ),
        (
            '["recipe[a]"]',
            {"kitchen": "https://git.example/kitchen.git"},
            "chef option kitchen (a git clone at run time) is not supported: "
            "attach the kitchen to the config and name it with kitchen_path",
        ),
        (
            '["recipe[a]"]',
            {"log_level": "loud"},
            "chef option log_level is not a chef log level: 'loud'",
        ),
    ],
)
def test_refused_documents(
    chef: StandIn,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    config: object,
    options: dict[str, str],
    reason: str,
) -> None:
    publisher.publish({"app/web": tool_config("chef", config, options=options)})
    make_agent().run_once()
    assert (report(store).status, report(store).reason) == ("FAILED", reason)
    assert chef.calls == []


def test_cinc_client_when_there_is_no_chef_client(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    cinc = StandIn(tmp_path / "cinc-bin", "cinc-client", ("-j",))
    monkeypatch.setenv("PATH", str(cinc.bin_dir))
    publisher.publish({"app/web": tool_config("chef", '["recipe[a]"]')})
    make_agent().run_once()
    assert report(store).status == "COMPLETE"
    assert json.loads(cinc.calls[0]["files"]["-j"]) == {"run_list": ["recipe[a]"]}


def test_timeout_kills_the_tool_s_process_group(
    chef: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    chef.path.write_text("#!/bin/sh\nsleep 30\n")
    publisher.publish({"app/web": Deploy(tool_config("chef", '["recipe[a]"]'), timeout=0.5)})
    began = time.monotonic()
    make_agent().run_once()
    assert time.monotonic() - began < 15, "the agent waited for the tool's 30 s sleep"
    assert report(store).reason == "chef-client timed out after 0.5s: killed its process group"


def test_preflight_runs_why_run_and_reports_what_chef_would_do(
    chef: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    chef.behave(
        stdout="Recipe: motd::default\n"
        "  * template[/etc/motd] action create\n"
        "    - Would update content in file /etc/motd from 1a2b to 3c4d\n"
        "Chef Infra Client finished, 1/1 resources would have been updated\n"
    )
    derived = tool_config("chef", ["recipe[motd]"], values={"motd": "hello"})
    publisher.publish({}, preflight={"app/web": derived})
    agent = make_agent()
    assert agent.run_once().exit_code == 0
    got = store.read_report("web1")
    assert got is not None
    check = got.preflight["app/web"]
    assert (check.status, check.changes) == (
        "PASSED",
        "- Would update content in file /etc/motd from 1a2b to 3c4d",
    )
    (call,) = chef.calls
    assert call["argv"][-1] == "--why-run"
    assert got.deployments == {}
