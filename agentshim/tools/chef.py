"""The ``chef`` tool, following heat-agents' hook-chef.py.

The config is the run list: a JSON list (as text, or a list), e.g.
``["recipe[app::default]"]``. Inputs are node attributes: they go, with the
``run_list``, to ``<hex>_node.json``, passed with ``-j``, except the ``deploy_*``
inputs and ``setpoint_files_dir``, and ``environment``, which becomes the
client's ``environment``, as in Heat. A generated ``<hex>_client.rb`` sets local
mode (chef-zero), the kitchen's ``cookbooks``, ``roles`` and ``environments``
paths, and node and cache paths under the working dir; the run is ``chef-client
-z --no-color --config <client.rb> -j <node.json>`` (``cinc-client`` when there
is no chef-client) with ``heat_outputs_path`` in its environment.

The kitchen is ``options.kitchen_path`` (relative to the config's attached
files, else to the working dir), by default the attached files' directory (or
``<work>/kitchen`` without one). Heat's ``options.kitchen``, a git URL cloned at
run time, is refused: attach the kitchen to the config instead (``get_file``),
so what runs is what the digest names. ``options.log_level`` (default ``info``)
sets ``log_level``; ``options.chef_license`` is passed as ``--chef-license``,
and the agent's ``CHEF_*`` variables (e.g. ``CHEF_LICENSE``) reach chef-client.
Status 0 succeeds; anything else fails, chef's first ``FATAL:`` line in the reason.

Tested against a stand-in chef-client (tests/tools/test_tool_chef.py): no chef
package on the registries this project can reach.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from setpoint.agentshim.contract import HookResult, ToolCall
from setpoint.agentshim.tools.base import (
    FILES_INPUT,
    BadDocument,
    base_env,
    changed_lines,
    find_command,
    finish,
    first_line,
    guarded,
    not_found,
    prepare,
    resolve,
    write_file,
)

PASSES = (
    "config as the run list, inputs as node attributes in a -j node JSON file (environment "
    "input as the client's environment), a generated client.rb (local mode, kitchen paths) "
    "for chef-client -z, heat_outputs_path in its environment"
)
CHECK_MODE = "--why-run"
COMMANDS = ("chef-client", "cinc-client")
INSTALL = "install Chef Infra Client or Cinc Client"
_LOG_LEVEL = re.compile(r"^(trace|debug|info|warn|error|fatal)$")


@guarded
def run(call: ToolCall) -> HookResult:
    run_list = _run_list(call.document.get("config"))
    options = call.document.get("options") or {}
    if options.get("kitchen"):
        raise BadDocument(
            "chef option kitchen (a git clone at run time) is not supported: "
            "attach the kitchen to the config and name it with kitchen_path"
        )
    level = str(options.get("log_level") or "info")
    if not _LOG_LEVEL.match(level):
        raise BadDocument(f"chef option log_level is not a chef log level: {level!r}")
    prepared = prepare(call)
    env = base_env(("CHEF_",))
    command = next(filter(None, (find_command(env, name) for name in COMMANDS)), None)
    if command is None:
        return not_found(COMMANDS[0], INSTALL)

    if options.get("kitchen_path"):
        kitchen = resolve(str(options["kitchen_path"]), prepared, call)
    else:
        kitchen = str(prepared.files or call.work / "kitchen")
    node: dict[str, Any] = {}
    environment = None
    for name, value in prepared.inputs.items():
        if name == "environment":
            environment = value
        elif not name.startswith("deploy_") and name != FILES_INPUT:
            node[name] = value
    node["run_list"] = run_list

    work, hexd = call.work, prepared.hexd
    settings: list[tuple[str, str]] = [
        ("cookbook_path", f"{kitchen}/cookbooks"),
        ("role_path", f"{kitchen}/roles"),
        ("environment_path", f"{kitchen}/environments"),
        ("node_path", str(work / "chef" / "nodes")),
        ("file_cache_path", str(work / "chef" / "cache")),
    ]
    if environment is not None:
        settings.append(("environment", str(environment)))
    client = f"log_level :{level}\nlog_location STDOUT\nlocal_mode true\nchef_zero.enabled true\n"
    client += "".join(f"{key} {_ruby_string(value)}\n" for key, value in settings)
    client_file = write_file(work / f"{hexd}_client.rb", client)
    node_file = write_file(work / f"{hexd}_node.json", json.dumps(node, indent=2, sort_keys=True))

    env["heat_outputs_path"] = str(prepared.outputs_base)
    argv = [command, "-z", "--no-color", "--config", str(client_file), "-j", str(node_file)]
    if options.get("chef_license"):
        argv += ["--chef-license", str(options["chef_license"])]
    if call.check:
        argv.append("--why-run")
    outcome = call.execute(argv, env)
    result = finish(call, prepared, command.rsplit("/", 1)[-1], outcome, detail=_detail)
    if not call.check:
        return result
    # Why-run says each change it skipped as "- Would ...".
    return replace(result, changes=changed_lines(result.stdout, r"^\s*- [Ww]ould "))


def _run_list(config: Any) -> list[str]:
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            config = None
    if not isinstance(config, list) or not all(isinstance(i, str) for i in config):
        raise BadDocument('chef config is not a run list (a JSON list such as ["recipe[app]"])')
    return config


def _ruby_string(value: str) -> str:
    """A single-quoted Ruby string: only backslash and quote are special."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _detail(stdout: str, stderr: str) -> str | None:
    for pattern in (r"FATAL: ", r"ERROR: "):
        found = first_line(stderr, pattern) or first_line(stdout, pattern)
        if found is not None:
            return found
    return None
