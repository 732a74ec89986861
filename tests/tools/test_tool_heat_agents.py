"""Heat's own hooks, unmodified, as ``<hooks-dir>/<tool>`` executables of the agent.

The ``heat-agents==13.0.0`` sdist is downloaded from PyPI at test time (once per
session, into a temporary dir; nothing of it is kept in this repository), and its
``hook-script.py`` and ``hook-ansible.py`` become the ``script`` and ``ansible``
hooks (a hooks-dir executable takes precedence over the built-in tool). The agent
gives them ``HEAT_<TOOL>_WORKING`` and ``HEAT_<TOOL>_OUTPUTS``; they must work
there and never in /var/lib/heat-config or /var/run/heat-config.

Without PyPI (or, for the ansible hook, without ansible-playbook) the tests are
skipped locally and fail when CI=true.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from agenttest import Publisher
from tooltest import put_tool_on_path, report, require_tool, tool_config, unavailable

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore

HEAT_AGENTS = "heat-agents==13.0.0"
HOOKS = ("script", "ansible")


@pytest.fixture(scope="session")
def heat_hooks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """hook-<tool>.py of the heat-agents sdist, by tool."""
    where = tmp_path_factory.mktemp("heat-agents")
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    argv += ["--no-deps", "--no-binary", ":all:", HEAT_AGENTS, "--dest", str(where)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        unavailable(f"downloading {HEAT_AGENTS} from PyPI took more than 300s")
    if done.returncode != 0:
        unavailable(f"cannot download {HEAT_AGENTS} from PyPI: {done.stderr.strip()[-500:]}")
    (sdist,) = where.glob("heat_agents-*.tar.gz")
    hooks: dict[str, bytes] = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            for tool in HOOKS:
                if member.name.endswith(f"/heat-config-{tool}/install.d/hook-{tool}.py"):
                    data = tar.extractfile(member)
                    assert data is not None
                    hooks[tool] = data.read()
    assert set(hooks) == set(HOOKS), f"hooks not found in {sdist.name}: {sorted(hooks)}"
    return hooks


def install_hook(hooks_dir: Path, tool: str, body: bytes) -> None:
    hooks_dir.mkdir(parents=True, exist_ok=True)
    (hooks_dir / tool).write_bytes(body)
    (hooks_dir / tool).chmod(0o755)


SCRIPT = """#!/bin/sh
printf 'hello %s' "$who" > "$heat_outputs_path.greeting"
printf '%s' "$deploy_action" > "$heat_outputs_path.action"
echo "configured for $who"
"""

# Heat's hook leaves the interpreter to discovery, which may find a python3 that
# cannot run (a pyenv shim): the play names the one running ansible.
PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - copy:
        dest: "{{ target }}"
        content: "{{ greeting }}, said the first deployment\\n"
    - copy:
        dest: "{{ heat_outputs_path }}.shout"
        content: "{{ greeting | upper }}"
"""


def test_heat_hook_script_runs_unmodified_in_the_agent_s_dirs(
    heat_hooks: dict[str, bytes],
    hooks_dir: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    install_hook(hooks_dir, "script", heat_hooks["script"])
    derived = tool_config("script", SCRIPT, values={"who": "alice"}, outputs=("greeting", "action"))
    publisher.publish({"app/first": derived})
    agent = make_agent()
    assert agent.run_once().exit_code == 0, report(store, "app/first").reason
    dep = report(store, "app/first")
    assert (dep.status, dep.exit_code) == ("COMPLETE", 0)
    assert dep.outputs == {"greeting": "hello alice", "action": "CREATE"}
    assert dep.stdout_tail == "configured for alice\n"
    # The hook logs to its stderr (heat-config's logging): kept with the report.
    assert "[INFO] who=alice" in dep.stderr_tail

    # It worked where the agent told it to (HEAT_SCRIPT_WORKING / HEAT_SCRIPT_OUTPUTS).
    digest = publisher.digests["app/first"]
    assert (agent.layout.work / "heat-script" / digest).read_text() == SCRIPT
    assert (agent.layout.outputs / "heat-script" / f"{digest}.greeting").exists()
    for heat_dir in ("/var/lib/heat-config/heat-config-script", "/var/run/heat-config"):
        assert not (Path(heat_dir) / digest).exists()


def test_heat_hook_ansible_consumes_the_output_of_another_deployment(
    heat_hooks: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    hooks_dir: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    put_tool_on_path(monkeypatch, require_tool("ansible-playbook", "pip install ansible-core"))
    install_hook(hooks_dir, "script", heat_hooks["script"])
    install_hook(hooks_dir, "ansible", heat_hooks["ansible"])
    first = tool_config("script", SCRIPT, values={"who": "bob"}, outputs=("greeting",))
    publisher.publish({"app/first": first})
    agent = make_agent()
    agent.run_once()
    greeting = report(store, "app/first").outputs["greeting"]
    assert greeting == "hello bob"

    # What the controller does for get_attr: the reported output becomes an input.
    target = tmp_path / "motd"
    second = tool_config(
        "ansible",
        PLAYBOOK,
        values={"greeting": greeting, "target": str(target)},
        outputs=("shout",),
    )
    publisher.publish({"app/first": first, "app/second": second})
    assert agent.run_once().exit_code == 0, report(store, "app/second").reason
    dep = report(store, "app/second")
    assert (dep.status, dep.exit_code) == ("COMPLETE", 0), (dep.reason, dep.stderr_tail)
    assert dep.outputs == {"shout": "HELLO BOB"}
    assert target.read_text() == "hello bob, said the first deployment\n"
    assert "PLAY RECAP" in dep.stdout_tail

    digest = publisher.digests["app/second"]
    working = agent.layout.work / "heat-ansible"
    assert (working / f"{digest}_playbook.yaml").read_text() == PLAYBOOK
    assert (working / f"{digest}_variables.json").exists()
    assert (agent.layout.outputs / "heat-ansible" / f"{digest}.shout").exists()


def test_heat_hook_ansible_failure_is_a_failed_deployment(
    heat_hooks: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    hooks_dir: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    put_tool_on_path(monkeypatch, require_tool("ansible-playbook", "pip install ansible-core"))
    install_hook(hooks_dir, "ansible", heat_hooks["ansible"])
    playbook = "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
    playbook += "  vars: {ansible_python_interpreter: '{{ ansible_playbook_python }}'}\n"
    playbook += "  tasks: [{command: /bin/false}]\n"
    publisher.publish({"app/web": tool_config("ansible", playbook)})
    make_agent().run_once()
    dep = report(store)
    assert (dep.status, dep.reason, dep.exit_code) == (
        "FAILED",
        "hook 'ansible' reported deploy_status_code 2",
        2,
    )
    assert "fatal: [localhost]: FAILED!" in dep.stdout_tail
