"""The heat-config contract: the built-in script hook, external hooks, and their failures."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agenttest import SERVER, Clock, Deploy, Publisher, component, script

from setpoint.agentshim.agent import Agent
from setpoint.store import DeploymentReport
from setpoint.store.bundles import files_tree_digest, make_zip
from setpoint.store.memory import MemoryStore


def entry(store: MemoryStore, name: str = "app/web") -> DeploymentReport:
    report = store.read_report(SERVER)
    assert report is not None
    return report.deployments[name]


def process_gone(pid: int) -> bool:
    """Dead, or a zombie nobody reaped yet (init may be slow in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def write_hook(hooks: Path, tool: str, body: str) -> Path:
    hooks.mkdir(parents=True, exist_ok=True)
    path = hooks / tool
    path.write_text(body)
    path.chmod(0o755)
    return path


# -- built-in script -------------------------------------------------------------------


def test_inputs_reach_the_script_as_environment_variables(
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_SECRET", "not-for-hooks")
    names = [
        "s",
        "n",
        "flag",
        "items",
        "doc",
        "deploy_action",
        "deploy_server_id",
        "deploy_stack_id",
        "deploy_resource_name",
        "deploy_signal_transport",
    ]
    body = "\n".join(f'printf %s "${n}" > "$heat_outputs_path.{n}"' for n in names)
    body += '\nprintf %s "${AGENT_SECRET-unset}" > "$heat_outputs_path.secret"'
    body += '\nprintf %s "$PWD" > "$heat_outputs_path.cwd"'
    inputs = [
        {"name": "s", "type": "String", "value": "a b"},
        {"name": "n", "type": "Number", "value": 42},
        {"name": "flag", "type": "Boolean", "value": True},
        {"name": "items", "type": "CommaDelimitedList", "value": ["a", "b"]},
        {"name": "doc", "type": "Json", "value": {"k": [1, 2.5]}},
    ]
    outputs = [{"name": n, "error_output": False} for n in [*names, "secret", "cwd"]]
    publisher.publish({"stk/web": script(body, inputs=inputs, outputs=outputs)})
    agent = make_agent()
    assert agent.run_once().exit_code == 0
    out = entry(store, "stk/web").outputs
    assert out == {
        "s": "a b",
        "n": "42",
        "flag": "true",
        "items": "a,b",  # a CommaDelimitedList reaches scripts as in Heat
        "doc": '{"k":[1,2.5]}',
        "deploy_action": "CREATE",
        "deploy_server_id": SERVER,
        "deploy_stack_id": "stk",
        "deploy_resource_name": "web",
        "deploy_signal_transport": "NO_SIGNAL",
        "secret": "unset",
        "cwd": str(agent.layout.work_dir("stk/web")),
    }


def test_outputs_are_read_from_files_and_old_ones_cleared(
    tmp_path: Path,
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    flag = tmp_path / "second"
    body = (
        f"if [ -e {flag} ]; then exit 0; fi\n"
        'printf "one\\n\\n" > "$heat_outputs_path.a"\n'
        'printf two > "$heat_outputs_path.b"\n'
        'printf "x\\n" > "$heat_outputs_path.undeclared"\n'
        "echo hello\n"
        "exit 1\n"
    )
    outputs = [{"name": n} for n in ("a", "b", "missing")]
    publisher.publish({"app/web": Deploy(script(body, outputs=outputs))})
    agent = make_agent()
    agent.run_once()
    dep = entry(store)
    assert dep.status == "FAILED"
    assert dep.outputs == {"a": "one\n", "b": "two"}  # one trailing newline stripped
    assert dep.stdout_tail == "hello\n"
    # The full output of the last run is kept for debugging.
    assert agent.layout.log_path("app/web", "stdout").read_text() == "hello\n"

    # The retry of the same digest writes no outputs: the old files are gone.
    flag.touch()
    clock.advance(60)
    agent.run_once()
    dep = entry(store)
    assert (dep.status, dep.attempts, dep.outputs) == ("COMPLETE", 2, {})


def test_script_without_shebang_runs_with_sh_and_tails_are_bounded(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    body = "i=0; while [ $i -lt 1000 ]; do echo line-$i; i=$((i+1)); done; echo err >&2"
    publisher.publish({"app/web": script(body)})
    agent = make_agent()
    agent.run_once()
    dep = entry(store)
    assert dep.status == "COMPLETE"
    assert len(dep.stdout_tail) == 4096
    assert dep.stdout_tail.endswith("line-999\n")
    full = agent.layout.log_path("app/web", "stdout").read_text()
    assert full.startswith("line-0\n")
    assert dep.stderr_tail == "err\n"
    assert dep.started_at == dep.finished_at == "2023-11-14T22:13:20.000Z"


def test_error_output_fails_the_deployment(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    body = (
        'printf "disk full" > "$heat_outputs_path.deploy_error"\nprintf 1 > "$heat_outputs_path.ok"'
    )
    outputs = [{"name": "deploy_error", "error_output": True}, {"name": "ok"}]
    publisher.publish({"app/web": script(body, outputs=outputs)})
    result = make_agent().run_once()
    dep = entry(store)
    assert dep.status == "FAILED"
    assert dep.exit_code == 0
    assert dep.reason == "error output 'deploy_error' is set: 'disk full'"
    assert dep.outputs == {"deploy_error": "disk full", "ok": "1"}
    assert result.failing == ["app/web"]


def test_empty_error_output_is_not_a_failure(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    body = 'printf "" > "$heat_outputs_path.deploy_error"'
    outputs = [{"name": "deploy_error", "error_output": True}]
    publisher.publish({"app/web": script(body, outputs=outputs)})
    make_agent().run_once()
    assert entry(store).status == "COMPLETE"


def test_timeout_fails_and_kills_the_process_group(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    child = tmp_path / "child.pid"
    body = f"sleep 30 &\necho $! > {child}\necho started\nwait\n"
    # 2 s: time for the shell to start its child and write its pid on a loaded
    # machine before the timeout kills it (0.5 s was not always enough).
    publisher.publish({"app/web": Deploy(script(body), timeout=2)})
    began = time.monotonic()
    make_agent().run_once()
    assert time.monotonic() - began < 15, "the agent waited for the hook's 30 s child"
    dep = entry(store)
    assert dep.status == "FAILED"
    assert dep.reason == "script timed out after 2s: killed its process group"
    assert dep.stdout_tail == "started\n"
    pid = int(child.read_text())
    deadline = time.monotonic() + 30
    while not process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(pid), "the hook's background child survived the timeout"


def test_script_that_cannot_start_fails_with_the_reason(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    publisher.publish({"app/web": script("#!/nonexistent/interpreter\n")})
    make_agent().run_once()
    dep = entry(store)
    assert dep.status == "FAILED"
    assert dep.reason is not None
    assert dep.reason.startswith("cannot start script:")
    assert "/nonexistent/interpreter" in dep.reason or "No such file" in dep.reason


# -- tools and external hooks --------------------------------------------------------------


def test_unknown_tool_fails_with_a_clear_reason(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    publisher.publish({"app/web": component([(["CREATE"], "mytool", "class {}")])})
    result = make_agent().run_once()
    dep = entry(store)
    assert dep.status == "FAILED"
    assert dep.reason == (
        f"no hook for tool 'mytool': not built in and no executable {tmp_path / 'hooks' / 'mytool'}"
    )
    assert result.exit_code == 1


def test_non_executable_hook_is_not_a_hook(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    hook = write_hook(tmp_path / "hooks", "mytool", "#!/bin/sh\necho '{}'\n")
    hook.chmod(0o644)
    publisher.publish({"app/web": component([(["CREATE"], "mytool", "class {}")])})
    make_agent().run_once()
    got = entry(store)
    assert got.status == "FAILED"
    assert got.reason == f"no hook for tool 'mytool': not built in and no executable {hook}"
    assert got.exit_code is None  # never started


ECHO_HOOK = """#!{python}
import json, os, sys
doc = json.load(sys.stdin)
inputs = {{i["name"]: i["value"] for i in doc["inputs"]}}
print("hook diagnostics", file=sys.stderr)
json.dump({{
    "deploy_stdout": "ran " + doc["config"],
    "deploy_stderr": "",
    "deploy_status_code": 0,
    "greeting": inputs["greeting"] + " from " + inputs["deploy_action"],
    "group": doc["group"],
    "id": doc["id"],
    "name": doc["name"],
    "options": doc["options"],
    "working": os.environ["HEAT_ECHO_HOOK_WORKING"],
    "outputs_dir": os.environ["HEAT_ECHO_HOOK_OUTPUTS"],
}}, sys.stdout)
"""


def test_external_hook_json_contract(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    write_hook(tmp_path / "hooks", "echo-hook", ECHO_HOOK.format(python=sys.executable))
    derived = component(
        [(["CREATE", "UPDATE"], "echo-hook", "manifest.pp")],
        inputs=[{"name": "greeting", "type": "String", "value": "hi"}],
        options={"verbose": True},
    )
    publisher.publish({"app/web": derived})
    agent = make_agent()
    assert agent.run_once().exit_code == 0
    dep = entry(store)
    assert dep.status == "COMPLETE"
    assert dep.exit_code == 0
    assert dep.stdout_tail == "ran manifest.pp"
    assert "hook diagnostics" in dep.stderr_tail
    state = agent.layout.root
    assert dep.outputs == {
        "greeting": "hi from CREATE",
        "group": "echo-hook",
        "id": publisher.digests["app/web"],
        "name": "app",
        "options": {"verbose": True},
        "working": str(state / "work" / "heat-echo-hook"),
        "outputs_dir": str(state / "outputs" / "heat-echo-hook"),
    }
    assert (state / "work" / "heat-echo-hook").is_dir()


def test_external_hook_overrides_the_builtin_script(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    hook = '#!/bin/sh\necho "{\\"deploy_status_code\\": 0, \\"who\\": \\"external\\"}"\n'
    write_hook(tmp_path / "hooks", "script", hook)
    publisher.publish({"app/web": script("exit 1")})
    make_agent().run_once()
    assert entry(store).outputs == {"who": "external"}


@pytest.mark.parametrize(
    ("body", "reason", "exit_code"),
    [
        ("#!/bin/sh\necho not json\n", "hook 'tool' printed no JSON on stdout", 0),
        ("#!/bin/sh\necho '[1]'\n", "hook 'tool' printed JSON that is not an object on stdout", 0),
        ("#!/bin/sh\n", "hook 'tool' printed no JSON on stdout", 0),
        ("#!/bin/sh\necho '{}'; exit 2\n", "hook 'tool' exited with status 2", 2),
        ("#!/bin/sh\nkill -9 $$\n", "hook 'tool' was killed by signal SIGKILL", -9),
        (
            '#!/bin/sh\necho \'{"deploy_status_code": 6, "deploy_stderr": "bad"}\'\n',
            "hook 'tool' reported deploy_status_code 6",
            6,
        ),
        (
            '#!/bin/sh\necho \'{"deploy_status_code": "x"}\'\n',
            "hook 'tool' reported a deploy_status_code that is not an integer: 'x'",
            None,
        ),
    ],
)
def test_external_hook_failures(
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    tmp_path: Path,
    body: str,
    reason: str,
    exit_code: int | None,
) -> None:
    write_hook(tmp_path / "hooks", "tool", body)
    publisher.publish({"app/web": component([(["CREATE"], "tool", {"any": "value"})])})
    make_agent().run_once()
    dep = entry(store)
    assert (dep.status, dep.reason, dep.exit_code) == ("FAILED", reason, exit_code)


def test_external_hook_timeout_kills_its_group(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    child = tmp_path / "child.pid"
    write_hook(tmp_path / "hooks", "slow", f"#!/bin/sh\nsleep 30 &\necho $! > {child}\nwait\n")
    # 2 s: time for the hook to start its child and write its pid before the timeout.
    publisher.publish({"app/web": Deploy(component([(["CREATE"], "slow", "")]), ("CREATE",), 2)})
    make_agent().run_once()
    assert entry(store).reason == "hook 'slow' timed out after 2s: killed its process group"
    pid = int(child.read_text())
    deadline = time.monotonic() + 30
    while not process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(pid)


# -- attached files -------------------------------------------------------------------------


def files_config(store: MemoryStore, tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    motd = store.put_blob(b"welcome\n")
    tool = store.put_blob(b"#!/bin/sh\necho tool\n")
    site_files = [("index.html", 0o644, b"<h1>hi</h1>"), ("bin/run", 0o755, b"#!/bin/sh\n")]
    tree = files_tree_digest(site_files)
    zip_digest = store.put_blob(make_zip(site_files))
    out = tmp_path / "seen"
    body = (
        f'cd "$setpoint_files_dir"\n'
        f"cat motd site/index.html > {out}\n"
        f"[ -x tool ] && [ ! -x motd ] && [ -x site/bin/run ] && echo modes-ok >> {out}\n"
        f"./tool >> {out}\n"
    )
    derived = script(
        body,
        files={
            "motd": {"type": "file", "digest": motd, "executable": False},
            "tool": {"type": "file", "digest": tool, "executable": True},
            "site": {"type": "directory", "digest": tree},
        },
    )
    return derived, {tree: zip_digest}


def test_files_and_directories_are_materialized(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    derived, bundles = files_config(store, tmp_path)
    publisher.publish({"app/web": derived}, bundles=bundles)
    agent = make_agent()
    agent.run_once()
    assert entry(store).status == "COMPLETE", entry(store).reason
    assert (tmp_path / "seen").read_text() == "welcome\n<h1>hi</h1>modes-ok\ntool\n"
    files_dir = agent.layout.files_dir(publisher.digests["app/web"])
    assert sorted(os.listdir(files_dir)) == ["motd", "site", "tool"]


def test_config_without_files_gets_no_files_dir_input(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    body = 'printf %s "${setpoint_files_dir-unset}" > "$heat_outputs_path.f"'
    publisher.publish({"app/web": script(body, outputs=[{"name": "f"}])})
    make_agent().run_once()
    assert entry(store).outputs == {"f": "unset"}


def test_a_bundle_that_does_not_match_its_tree_digest_is_refused(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    derived, bundles = files_config(store, tmp_path)
    (tree,) = bundles
    other = store.put_blob(make_zip([("index.html", 0o644, b"<h1>evil</h1>")]))
    publisher.publish({"app/web": derived}, bundles={tree: other})
    result = make_agent().run_once()
    assert result.ran == []
    assert result.error is not None
    assert "digest mismatch" in result.error
    assert not (tmp_path / "seen").exists()
