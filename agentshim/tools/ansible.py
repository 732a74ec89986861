"""The ``ansible`` tool, following heat-agents' hook-ansible.py.

The config is a playbook, written to ``<hex>_playbook.yaml`` in the working
dir. Every input (typed values as they are, the ``deploy_*`` ones included),
``heat_config_id`` and ``heat_outputs_path`` go to ``<hex>_variables.json``,
passed as ``--extra-vars @file``. Without ``options.inventory`` a generated
inventory holds one host, ``localhost``, with the local connection and the
Python that runs ansible; ``options.inventory`` names another (relative to the
config's attached files, else to the working dir), as do ``options.modulepath``
(``--module-path``). ``options.tags`` and ``options.skip_tags`` (text or a list)
are passed on, ``options.callback_plugins`` becomes ``ANSIBLE_CALLBACK_PLUGINS``,
``options.verbosity`` (1-6) gives as many ``-v``, ``options.debug`` ``-vvv``.
The agent's ``ANSIBLE_*`` variables reach ansible-playbook; colour is off.

Status 0 succeeds, unless every play said no host matched it (nothing ran);
anything else fails, with what the status means and the failing task's message
(or ansible's ``ERROR`` line) in the reason. An inventory that does not parse is
an error, not a run on the implicit localhost.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from setpoint.agentshim.contract import HookResult, ToolCall
from setpoint.agentshim.tools.base import (
    BadDocument,
    base_env,
    config_text,
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
    "config as a playbook file, inputs + heat_outputs_path + heat_config_id as "
    "--extra-vars @<json file>, a generated localhost inventory (connection local) "
    "unless options.inventory; options tags, skip_tags, modulepath, callback_plugins, "
    "verbosity/debug"
)
CHECK_MODE = "--check --diff"
COMMAND = "ansible-playbook"
INSTALL = "install ansible-core"
LOCALHOST = {
    "ansible_connection": "local",
    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
}
MEANING = {
    1: "error",
    2: "a task failed",
    3: "a host was unreachable",
    4: "the playbook could not be parsed",
    5: "bad or incomplete options",
    99: "interrupted",
    250: "unexpected error",
}


@guarded
def run(call: ToolCall) -> HookResult:
    playbook = config_text(call)
    if not playbook.strip():
        raise BadDocument("ansible config is empty: no playbook to run")
    options = call.document.get("options") or {}
    verbosity = _verbosity(options)
    prepared = prepare(call)
    env = base_env(("ANSIBLE_",))
    env["ANSIBLE_NOCOLOR"] = "1"
    env.pop("ANSIBLE_FORCE_COLOR", None)
    # An inventory that does not parse is an error, not a run on the implicit localhost.
    env.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
    env.setdefault("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "true")
    command = find_command(env, COMMAND)
    if command is None:
        return not_found(COMMAND, INSTALL)

    variables: dict[str, Any] = {"heat_config_id": call.document["id"]}
    variables.update(prepared.inputs)
    variables["heat_outputs_path"] = str(prepared.outputs_base)
    work, hexd = call.work, prepared.hexd
    playbook_file = write_file(work / f"{hexd}_playbook.yaml", playbook)
    vars_file = write_file(work / f"{hexd}_variables.json", json.dumps(variables, indent=2))
    if options.get("inventory"):
        inventory = resolve(str(options["inventory"]), prepared, call)
    else:
        hosts = {"all": {"hosts": {"localhost": LOCALHOST}}}
        inventory = str(write_file(work / f"{hexd}_inventory.json", json.dumps(hosts, indent=2)))

    argv = [command, "-i", inventory]
    if options.get("tags"):
        argv += ["--tags", option_list(options["tags"])]
    if options.get("skip_tags"):
        argv += ["--skip-tags", option_list(options["skip_tags"])]
    if options.get("modulepath"):
        argv += ["--module-path", resolve(str(options["modulepath"]), prepared, call)]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    argv += [str(playbook_file), "--extra-vars", f"@{vars_file}"]
    if call.check:
        argv += ["--check", "--diff"]
    if options.get("callback_plugins"):
        env["ANSIBLE_CALLBACK_PLUGINS"] = resolve(str(options["callback_plugins"]), prepared, call)

    outcome = call.execute(argv, env)
    result = finish(call, prepared, COMMAND, outcome, meaning=MEANING, detail=_detail)
    if result.ok and _no_host_ran(result.stdout):
        reason = f"{COMMAND} ran nothing: no host of the inventory matched the plays"
        return replace(result, ok=False, reason=reason)
    return replace(result, changes=_changes(result.stdout)) if call.check else result


def _changes(stdout: str) -> str:
    """The tasks a check run reported changed, each with its diff: ansible prints a
    task's ``--diff`` between its ``TASK [...]`` banner and its ``changed:`` line."""
    found: list[str] = []
    task, diff = "", list[str]()
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            task, diff = line.split("[", 1)[1].rsplit("]", 1)[0], []
        elif line.startswith("changed: ["):
            found.append("\n".join([f"changed: {task}", *diff]))
        elif task and line.startswith(("---", "+++", "@@", "+", "-")):
            diff.append(line)
    return "\n".join(found)


def _verbosity(options: dict[str, Any]) -> int:
    value = options.get("verbosity")
    if value is None:
        return 3 if options.get("debug") else 0
    try:
        return max(0, min(int(value), 6))
    except (TypeError, ValueError):
        raise BadDocument(f"ansible option verbosity is not a number: {value!r}") from None


def _no_host_ran(stdout: str) -> bool:
    """Every play said (in the default output) that no host matched it."""
    plays = len(re.findall(r"^PLAY \[", stdout, re.MULTILINE))
    skipped = len(re.findall(r"^skipping: no hosts matched$", stdout, re.MULTILINE))
    return plays > 0 and skipped == plays


def _detail(stdout: str, stderr: str) -> str | None:
    """The failing task's message, else ansible's own error line."""
    fatal = first_line(stdout, r"^(fatal|failed): \[")
    if fatal is not None:
        head, _, body = fatal.partition(" => ")
        try:
            result = json.loads(body)
        except ValueError:
            return fatal
        if not isinstance(result, dict) or not result.get("msg"):
            return fatal
        host = head.split("[", 1)[-1].split("]", 1)[0]
        message = f"{host}: {result['msg']}"
        if result.get("stderr"):
            message += f" (stderr: {str(result['stderr']).strip()})"
        return message
    return first_line(stderr, r"^(\[ERROR\]|ERROR!)") or first_line(stdout, r"^(\[ERROR\]|ERROR!)")
