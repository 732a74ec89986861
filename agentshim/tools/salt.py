"""The ``salt`` tool, after heat-agents' hook-salt.py (which called salt in-process).

The config is a state file (text, or a map written as JSON, which is YAML),
``<work>/salt/states/setpoint_<hex>.sls``, applied with ``salt-call --local
--config-dir <work>/salt --out json --retcode-passthrough state.sls``. The
generated minion config keeps everything of the run under the working dir
(``root_dir``), uses the local file client, names the minion after
``deploy_server_id``, and puts the config's attached files on ``file_roots`` too
(``salt://`` reaches them). Inputs are pillar data, typed: a ``#!json`` pillar
file (never the command line, where ``ps`` would show them) with
``heat_outputs_path`` and ``heat_config_id`` beside the inputs, so a state uses
``{{ pillar['name'] }}``. ``options.log_level`` (or ``options.debug``) sets
``--log-level``.

The per-state results of ``--out json`` decide, as in Heat (salt's status is not
always reliable): any state whose result is false fails the deployment, the
first failing state's id and comment in the reason; salt's error list (e.g. a
render error) fails it too. No JSON on stdout fails with the status.
"""

from __future__ import annotations

import json
from typing import Any

from setpoint.agentshim.contract import HookResult, ToolCall, interrupted, status_text
from setpoint.agentshim.processes import decode
from setpoint.agentshim.tools.base import (
    base_env,
    config_text,
    find_command,
    first_line,
    guarded,
    not_found,
    prepare,
    read_outputs,
    shorten,
    write_file,
)

PASSES = (
    "config as a state file for salt-call --local state.sls (minion config and file_roots "
    "under the working dir), inputs + heat_outputs_path as pillar (a #!json pillar file); "
    "per-state results from --out json"
)
CHECK_MODE = "test=True"
COMMAND = "salt-call"
INSTALL = "install salt"


@guarded
def run(call: ToolCall) -> HookResult:
    state = config_text(call)
    options = call.document.get("options") or {}
    prepared = prepare(call)
    env = base_env()
    command = find_command(env, COMMAND)
    if command is None:
        return not_found(COMMAND, INSTALL)

    top = call.work / "salt"
    name = f"setpoint_{prepared.hexd}"
    states, pillar = top / "states", top / "pillar"
    write_file(states / f"{name}.sls", state)
    data: dict[str, Any] = dict(prepared.inputs)
    data["heat_outputs_path"] = str(prepared.outputs_base)
    data["heat_config_id"] = call.document["id"]
    write_file(pillar / f"{name}.sls", "#!json\n" + json.dumps(data, indent=2) + "\n")
    write_file(pillar / "top.sls", json.dumps({"base": {"*": [name]}}) + "\n")
    file_roots = [str(states)]
    if prepared.files is not None:
        file_roots.append(str(prepared.files))
    minion: dict[str, Any] = {
        "file_client": "local",
        "root_dir": str(top / "root"),
        "file_roots": {"base": file_roots},
        "pillar_roots": {"base": [str(pillar)]},
    }
    server = prepared.inputs.get("deploy_server_id")
    if isinstance(server, str) and server:
        minion["id"] = server
    write_file(top / "minion", json.dumps(minion, indent=2) + "\n")

    level = options.get("log_level") or ("debug" if options.get("debug") else "warning")
    argv = [command, "--local", "--config-dir", str(top), "--out", "json"]
    argv += ["--retcode-passthrough", "--log-level", str(level), "state.sls", name]
    if call.check:
        argv.append("test=True")
    outcome = call.execute(argv, env)
    failed = interrupted(outcome, COMMAND, call.timeout)
    if failed is not None:
        return failed
    stdout, stderr = decode(outcome.stdout), decode(outcome.stderr)
    reason = _failure(stdout, stderr, outcome.returncode)
    outputs = read_outputs(prepared)
    changes = _changes(stdout) if call.check and reason is None else None
    code = outcome.returncode
    return HookResult(reason is None, outputs, stdout, stderr, code, reason, changes=changes)


def _changes(stdout: str) -> str:
    """The states a ``test=True`` run would change: salt gives them a result of
    None (neither done nor failed), with a comment saying what would change."""
    result = json.loads(stdout)["local"]
    pending = [s for s in result.values() if isinstance(s, dict) and s.get("result") is None]
    pending.sort(key=lambda s: s.get("__run_num__", 0))
    lines = []
    for state in pending:
        comment = str(state.get("comment") or "").split("\n", 1)[0].strip()
        lines.append(f"{state.get('__id__') or state.get('name')}: {comment}")
    return "\n".join(lines)


def _failure(stdout: str, stderr: str, returncode: int | None) -> str | None:
    """Why the run failed, from salt's JSON result; None when every state succeeded."""
    try:
        result = json.loads(stdout)
    except ValueError:
        result = None
    ret = result.get("local") if isinstance(result, dict) else None
    if isinstance(ret, dict):
        failing = [s for s in ret.values() if isinstance(s, dict) and s.get("result") is False]
        if not failing:
            return None
        failing.sort(key=lambda s: s.get("__run_num__", 0))
        first = failing[0]
        what = f"salt state {first.get('__id__') or first.get('name')!r} failed"
        if len(failing) > 1:
            what = f"{len(failing)} salt states failed, first {what.removeprefix('salt ')}"
        comment = str(first.get("comment") or "").strip()
        return shorten(f"{what}: {comment}" if comment else what)
    if isinstance(ret, list) and ret:
        return shorten("salt-call: " + "; ".join(str(e).strip() for e in ret))
    reason = f"{status_text(COMMAND, returncode)}, with no state results on stdout"
    error = first_line(stderr, r"^\[(ERROR|CRITICAL)")
    return shorten(f"{reason}: {error}" if error else reason)
