"""The ``puppet`` tool, following heat-agents' hook-puppet.py.

The config is a manifest, written to ``<hex>.pp`` in the working dir and run
with ``puppet apply --color false --detailed-exitcodes --logdest console``.
Inputs reach it as facts, ``FACTER_<name>`` environment variables (strings as
they are, anything else as JSON), unless ``options.enable_facter`` is false;
with ``options.enable_hiera`` they are also hiera data, typed: a JSON data file
and a hiera 5 config naming it (``--hiera_config``), so ``lookup('<name>')``
works. This replaces Heat's file in ``/etc/puppet/hieradata`` that the system's
hiera config had to name: the run does not depend on it. ``heat_outputs_path``
is always a fact (and hiera data with hiera), ``deploy_config_name`` one with
hiera, as in Heat. ``options.modulepath`` (relative to the attached files,
else to the working dir) becomes ``--modulepath``, ``options.tags`` ``--tags``,
``options.enable_debug`` ``--debug`` and ``options.enable_verbose``
``--verbose`` (on the console, not in Heat's log files).

With ``--detailed-exitcodes``, 0 (nothing changed) and 2 (changes applied)
succeed; the report keeps the real status. 4 (failures) and 6 (changes and
failures), or anything else, fail, with puppet's first ``Error:`` line in the
reason.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from setpoint.agentshim.contract import HookResult, ToolCall, input_as_env
from setpoint.agentshim.tools.base import (
    base_env,
    config_text,
    env_name,
    find_command,
    finish,
    first_line,
    guarded,
    not_found,
    option_list,
    prepare,
    resolve,
    write_file,
)

PASSES = (
    "config as a manifest for puppet apply --detailed-exitcodes, inputs as FACTER_<name> "
    "facts and/or (enable_hiera) a hiera JSON data file with its own --hiera_config, "
    "heat_outputs_path as a fact; options modulepath, tags, enable_debug, enable_verbose"
)
CHECK_MODE = "--noop --show_diff"
COMMAND = "puppet"
INSTALL = "install puppet or puppet-agent"
MEANING = {1: "error", 4: "failures", 6: "changes and failures"}


@guarded
def run(call: ToolCall) -> HookResult:
    manifest = config_text(call)
    options = call.document.get("options") or {}
    prepared = prepare(call)
    env = base_env()
    command = find_command(env, COMMAND)
    if command is None:
        return not_found(COMMAND, INSTALL)

    work, hexd = call.work, prepared.hexd
    outputs_path = str(prepared.outputs_base)
    if options.get("enable_facter", True):
        for name, value in prepared.inputs.items():
            env[f"FACTER_{env_name(name)}"] = input_as_env(value)
    env["FACTER_heat_outputs_path"] = outputs_path

    manifest_file = write_file(work / f"{hexd}.pp", manifest)
    argv = [command, "apply", "--color", "false", "--detailed-exitcodes", "--logdest", "console"]
    if options.get("enable_hiera"):
        name = str(call.document.get("name") or "")
        env["FACTER_deploy_config_name"] = name
        data: dict[str, Any] = dict(prepared.inputs)
        data["heat_outputs_path"] = outputs_path
        data_file = write_file(work / f"{hexd}_hiera.json", json.dumps(data, indent=2))
        hiera = _hiera_config(str(data_file))
        argv += ["--hiera_config", str(write_file(work / f"{hexd}_hiera.yaml", hiera))]
    if options.get("modulepath"):
        argv += ["--modulepath", resolve(str(options["modulepath"]), prepared, call)]
    if options.get("tags"):
        argv += ["--tags", option_list(options["tags"])]
    if options.get("enable_debug"):
        argv.append("--debug")
    if options.get("enable_verbose"):
        argv.append("--verbose")
    if call.check:
        argv += ["--noop", "--show_diff"]
    argv.append(str(manifest_file))

    outcome = call.execute(argv, env)
    result = finish(
        call,
        prepared,
        "puppet apply",
        outcome,
        success=lambda code: code in (0, 2),
        meaning=MEANING,
        detail=_detail,
    )
    if not call.check:
        return result
    # --noop exits 0 whether or not something would change: its notices say.
    return replace(result, changes=_changes(result.stdout))


def _changes(stdout: str) -> str:
    """What a --noop --show_diff run would change: each resource's ``(noop)``
    notice after the diff of its file. The diff's headers lose their times and
    puppet's temporary file name, so an unchanged drift reads the same twice."""
    out: list[str] = []
    in_diff = False
    for line in stdout.splitlines():
        if line.startswith("Notice: "):
            in_diff = False
            if line.startswith("Notice: /Stage[") and line.endswith("(noop)"):
                out.append(line.strip())
        elif line.startswith("--- "):
            in_diff = True
            out.append("--- " + line[4:].split("\t", 1)[0])
        elif in_diff and line.startswith("+++ "):
            out.append("+++ (what the manifest says)")
        elif in_diff and line[:1] in ("@", "-", "+", " ", "\\"):
            out.append(line)
    return "\n".join(out)


def _hiera_config(data_file: str) -> str:
    # JSON is YAML: the path is quoted whatever characters it has.
    return (
        "---\nversion: 5\nhierarchy:\n"
        f"  - name: setpoint inputs\n    data_hash: json_data\n    path: {json.dumps(data_file)}\n"
    )


def _detail(stdout: str, stderr: str) -> str | None:
    """Puppet's first error (not a facter complaint about an unreadable /proc file)."""
    pattern = r"^Error: (?!Facter:)"
    return first_line(stderr, pattern) or first_line(stdout, pattern)
