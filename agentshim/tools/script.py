"""The ``script`` tool, as heat-agents' hook-script.py.

The config text is written to an executable file in the deployment's working
dir and run (with ``/bin/sh`` when it has no ``#!``) with the inputs as
environment variables (strings as they are, anything else as JSON) beside the
agent's PATH, HOME and LANG; outputs are read from ``$heat_outputs_path.<name>``.
"""

from __future__ import annotations

from setpoint.agentshim.contract import HookResult, ToolCall, input_as_env
from setpoint.agentshim.tools.base import (
    BadDocument,
    base_env,
    env_name,
    finish,
    guarded,
    prepare,
    write_file,
)

PASSES = (
    "config as an executable file (/bin/sh without #!), inputs as environment variables, "
    "$heat_outputs_path"
)


@guarded
def run(call: ToolCall) -> HookResult:
    config = call.document.get("config")
    if not isinstance(config, str):
        raise BadDocument("script config is not text")
    env = base_env()
    for item in call.document["inputs"]:
        env[env_name(item["name"])] = input_as_env(item.get("value"), item.get("type"))
    prepared = prepare(call)
    path = call.work / prepared.hexd
    # Replaced, never rewritten in place: a leftover reader never sees half a script.
    write_file(path, config, 0o700)
    env["heat_outputs_path"] = str(prepared.outputs_base)
    argv = [str(path)] if config.startswith("#!") else ["/bin/sh", str(path)]
    return finish(call, prepared, "script", call.execute(argv, env))
