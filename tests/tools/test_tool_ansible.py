"""The built-in ansible tool, run through the agent with the real ansible-playbook.

Needs ansible-core (``.ci/install-tools.sh``): skipped without it, failed when CI=true.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from agenttest import Publisher
from tooltest import attach_dir, attach_file, put_tool_on_path, report, require_tool, tool_config

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: the motd, from an attached template
      ansible.builtin.template:
        src: "{{ setpoint_files_dir }}/motd.j2"
        dest: "{{ target }}"
    - name: an output written back
      ansible.builtin.copy:
        dest: "{{ heat_outputs_path }}.greeting"
        content: "hello {{ who }} from {{ deploy_action }} on {{ inventory_hostname }}"
"""
TEMPLATE = b"Welcome, {{ who }}! Next port: {{ port + 1 }}\n"


@pytest.fixture(autouse=True)
def ansible(monkeypatch: pytest.MonkeyPatch) -> Path:
    found = require_tool("ansible-playbook", "pip install ansible-core")
    put_tool_on_path(monkeypatch, found)
    return found


def motd_config(store: MemoryStore, target: Path, who: str) -> dict[str, object]:
    return tool_config(
        "ansible",
        PLAYBOOK,
        values={"who": who, "port": 8080, "target": str(target)},
        outputs=("greeting",),
        files={"motd.j2": attach_file(store, TEMPLATE)},
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
    # Typed inputs: the Number arrives as a number (port + 1).
    assert target.read_text() == "Welcome, alice! Next port: 8081\n"
    assert dep.outputs == {"greeting": "hello alice from CREATE on localhost"}
    assert "PLAY RECAP" in dep.stdout_tail

    publisher.publish({"app/web": motd_config(store, target, "bob")})
    assert agent.run_once().exit_code == 0, report(store).reason
    dep = report(store)
    assert (dep.status, dep.action) == ("COMPLETE", "UPDATE")
    assert target.read_text() == "Welcome, bob! Next port: 8081\n"
    assert dep.outputs == {"greeting": "hello bob from UPDATE on localhost"}


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        (
            "ansible.builtin.file: {path: /nonexistent/setpoint-test, state: file}",
            "ansible-playbook exited with status 2 (a task failed): localhost: "
            "file (/nonexistent/setpoint-test) is absent, cannot continue",
        ),
        (
            "no_such_module: {x: 1}",
            "ansible-playbook exited with status 4 (the playbook could not be parsed): [ERROR]:",
        ),
    ],
)
def test_a_failing_task_reports_ansible_s_error(
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    task: str,
    reason: str,
) -> None:
    playbook = f"- hosts: all\n  gather_facts: false\n  tasks:\n    - {task}\n"
    publisher.publish({"app/web": tool_config("ansible", playbook)})
    assert make_agent().run_once().exit_code == 1
    dep = report(store)
    assert dep.status == "FAILED"
    assert dep.reason is not None
    assert dep.reason.startswith(reason), dep.reason
    assert dep.exit_code == int(reason.split("status ")[1][0])


def test_tags_skip_tags_and_verbosity(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    playbook = """\
- hosts: all
  gather_facts: false
  tasks:
    - copy: {dest: "{{ heat_outputs_path }}.one", content: "1"}
      tags: [one]
    - copy: {dest: "{{ heat_outputs_path }}.two", content: "2"}
      tags: [two, extra]
    - copy: {dest: "{{ heat_outputs_path }}.three", content: "3"}
      tags: [two]
"""
    options = {"tags": ["one", "two"], "skip_tags": "extra", "verbosity": 2}
    derived = tool_config("ansible", playbook, outputs=("one", "two", "three"), options=options)
    publisher.publish({"app/web": derived})
    make_agent().run_once()
    dep = report(store)
    assert dep.status == "COMPLETE", dep.reason
    assert dep.outputs == {"one": "1", "three": "3"}
    assert "PLAYBOOK: " in dep.stdout_tail, "-vv prints the playbook's name"


def test_inventory_and_modulepath_come_from_the_attached_files(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    module = b"""#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

def main():
    module = AnsibleModule(argument_spec={"name": {"type": "str"}})
    module.exit_json(changed=False, shout=module.params["name"].upper())

main()
"""
    inventory = b"""\
web:
  hosts:
    web1:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
      colour: blue
"""
    library, bundles = attach_dir(store, [("shout.py", 0o644, module)])
    playbook = """\
- hosts: web
  gather_facts: false
  tasks:
    - shout: {name: "{{ who }}"}
      register: said
    - copy:
        dest: "{{ heat_outputs_path }}.said"
        content: "{{ inventory_hostname }} {{ colour }} {{ said.shout }}"
"""
    derived = tool_config(
        "ansible",
        playbook,
        values={"who": "carol"},
        outputs=("said",),
        options={"inventory": "hosts.yaml", "modulepath": "library"},
        files={"hosts.yaml": attach_file(store, inventory), "library": library},
    )
    publisher.publish({"app/web": derived}, bundles=bundles)
    make_agent().run_once()
    dep = report(store)
    assert dep.status == "COMPLETE", (dep.reason, dep.stdout_tail, dep.stderr_tail)
    assert dep.outputs == {"said": "web1 blue CAROL"}


def test_the_extra_vars_file_holds_the_inputs_typed(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    playbook = "- hosts: all\n  gather_facts: false\n  tasks: []\n"
    derived = tool_config("ansible", playbook, values={"n": 3, "m": {"k": [True]}, "s": "x"})
    publisher.publish({"app/web": derived})
    agent = make_agent()
    agent.run_once()
    assert report(store).status == "COMPLETE"
    digest = publisher.digests["app/web"]
    hexd = digest.removeprefix("blake3:")
    work = agent.layout.work_dir("app/web")
    variables = json.loads((work / f"{hexd}_variables.json").read_text())
    assert {k: variables[k] for k in ("n", "m", "s", "heat_config_id")} == {
        "n": 3,
        "m": {"k": [True]},
        "s": "x",
        "heat_config_id": digest,
    }
    assert variables["heat_outputs_path"] == str(agent.layout.outputs / hexd)
    assert variables["deploy_action"] == "CREATE"
    assert (work / f"{hexd}_variables.json").stat().st_mode & 0o777 == 0o600
    inventory = json.loads((work / f"{hexd}_inventory.json").read_text())
    assert inventory["all"]["hosts"]["localhost"]["ansible_connection"] == "local"


def test_an_empty_playbook_fails(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    publisher.publish({"app/web": tool_config("ansible", "  \n")})
    make_agent().run_once()
    dep = report(store)
    assert (dep.status, dep.reason) == ("FAILED", "ansible config is empty: no playbook to run")


def test_a_playbook_no_host_matches_fails_and_so_does_an_inventory_that_does_not_parse(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    playbook = "- hosts: databases\n  gather_facts: false\n  tasks: [{ping: {}}]\n"
    publisher.publish(
        {
            "app/web": tool_config("ansible", playbook),
            "app/db": tool_config(
                "ansible",
                playbook,
                options={"inventory": "hosts"},
                files={"hosts": attach_file(store, b"[databases\nnot an inventory = =\n")},
            ),
        }
    )
    make_agent().run_once()
    web, db = report(store, "app/web"), report(store, "app/db")
    assert (web.status, web.reason) == (
        "FAILED",
        "ansible-playbook ran nothing: no host of the inventory matched the plays",
    )
    assert db.status == "FAILED"
    assert db.reason is not None
    assert db.reason.startswith("ansible-playbook exited with status 1 (error): [ERROR]:")
    assert "inventory" in db.reason
