"""The ``docker-compose`` tool, following heat-agents' hook-docker-compose.py.

The config is a compose file (text, or a map written as JSON, which is YAML),
``<work>/docker-compose.yaml``; the working dir is the project directory (the
config's attached files are at ``${setpoint_files_dir}``). Inputs
are the environment of the compose command (strings as they are, anything else
as JSON), so ``${name}`` interpolates them, and the env file
``<work>/setpoint.env``, given with ``--env-file`` and named by
``$setpoint_env_file`` so a service can take it whole
(``env_file: ${setpoint_env_file}``). Heat's ``env_files`` input (a list of
``{file_name, content}``) still writes those files into the project directory.
The agent's ``DOCKER_*`` and ``COMPOSE_*`` variables reach compose.

CREATE and UPDATE run ``up -d --no-build`` (with ``--remove-orphans`` when
``options.remove_orphans``); DELETE runs ``down`` (Heat did nothing, leaving the
containers running; list only CREATE and UPDATE in the component's actions to
keep that). ``options.project_name`` names the project, else
``<stack>-<deployment>``, lowercased. The command is ``docker compose`` when the
docker CLI has the compose plugin, else ``docker-compose``. Status 0 succeeds;
anything else fails with compose's first error line in the reason.

Tested against a stand-in docker (tests/tools/test_tool_docker_compose.py): there
is no container engine on the machines this project is tested on.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from setpoint.agentshim.contract import HookResult, ToolCall, input_as_env, interrupted
from setpoint.agentshim.tools.base import (
    BadDocument,
    Prepared,
    base_env,
    config_text,
    env_name,
    find_command,
    finish,
    first_line,
    guarded,
    not_found,
    prepare,
    write_file,
)

PASSES = (
    "config as the compose file, inputs as the environment of docker compose and as an "
    "--env-file (also $setpoint_env_file); up -d --no-build (down on DELETE), "
    "options project_name, remove_orphans"
)
CHECK_MODE = "config --quiet, then pull --quiet"
INSTALL = "install docker with the compose plugin, or docker-compose"
PROBE_LIMIT = 30.0
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PLAIN = re.compile(r"^[A-Za-z0-9_./:,@%+=-]*$")


@guarded
def run(call: ToolCall) -> HookResult:
    options = call.document.get("options") or {}
    prepared = prepare(call)
    compose_text = config_text(call) if call.document.get("config") else ""
    deleting = prepared.inputs.get("deploy_action") == "DELETE"
    if not compose_text.strip() and not deleting:
        raise BadDocument("docker-compose config is empty: no compose file to bring up")
    project = _project_name(options, prepared)

    env = base_env(("DOCKER_", "COMPOSE_"))
    work = call.work
    env_file = work / "setpoint.env"
    lines = []
    for name, value in prepared.inputs.items():
        env[env_name(name)] = text = input_as_env(value)
        lines.append(f"{name}={_env_value(text)}\n")
    env["heat_outputs_path"] = str(prepared.outputs_base)
    env["setpoint_env_file"] = str(env_file)
    lines.append(f"heat_outputs_path={_env_value(str(prepared.outputs_base))}\n")
    env_files = _env_files(prepared.inputs.get("env_files"))

    base, failed = _compose_command(call, env)
    if failed is not None:
        return failed
    if base is None:
        return not_found("docker compose", INSTALL)

    write_file(env_file, "".join(lines))
    for parts, content in env_files:
        write_file(work.joinpath(*parts), content)
    compose_file = work / "docker-compose.yaml"
    if compose_text.strip():
        write_file(compose_file, compose_text)
    argv = [*base, "--project-name", project, "--project-directory", str(work)]
    if compose_file.exists():
        argv += ["--file", str(compose_file)]
    argv += ["--env-file", str(env_file)]
    what = " ".join(b.rsplit("/", 1)[-1] for b in base)
    if call.check:
        return _check(call, prepared, what, argv, env)
    if deleting:
        argv.append("down")
    else:
        argv += ["up", "-d", "--no-build"]
        if options.get("remove_orphans"):
            argv.append("--remove-orphans")
    outcome = call.execute(argv, env)
    return finish(call, prepared, what, outcome, detail=_detail)


def _check(
    call: ToolCall, prepared: Prepared, what: str, argv: list[str], env: dict[str, str]
) -> HookResult:
    """Check mode: the compose file and its interpolation (``config``), then that
    every image is there to run (``pull``: the images are fetched, nothing is
    started). What ``up`` would change compose cannot say: ``changes`` stays None."""
    checked = call.execute([*argv, "config", "--quiet"], env)
    result = finish(call, prepared, f"{what} config", checked, detail=_detail)
    if not result.ok:
        return result
    pulled = call.execute([*argv, "pull", "--quiet"], env)
    return finish(call, prepared, f"{what} pull", pulled, detail=_detail)
    return result


def _project_name(options: dict[str, Any], prepared: Prepared) -> str:
    given = options.get("project_name")
    if given is not None:
        if not isinstance(given, str) or not _PROJECT.match(given):
            raise BadDocument(
                f"docker-compose option project_name {given!r} is not a compose project name "
                "(lowercase letters, digits, '-' and '_', starting with a letter or digit)"
            )
        return given
    parts = [prepared.inputs.get("deploy_stack_id"), prepared.inputs.get("deploy_resource_name")]
    name = "-".join(str(p) for p in parts if p)
    name = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).lstrip("-_")
    return name or f"setpoint-{prepared.hexd[:12]}"


def _compose_command(
    call: ToolCall, env: dict[str, str]
) -> tuple[list[str] | None, HookResult | None]:
    """``[docker, compose]`` when the plugin answers, else ``[docker-compose]``, else None.

    The second value is a failed result when the probe was interrupted (timeout, stop)."""
    docker = find_command(env, "docker")
    if docker is not None:
        outcome = call.execute([docker, "compose", "version"], env, limit=PROBE_LIMIT)
        if outcome.aborted or (outcome.timed_out and time.monotonic() >= call.deadline):
            return None, interrupted(outcome, "docker compose version", call.timeout)
        if outcome.returncode == 0:
            return [docker, "compose"], None
    legacy = find_command(env, "docker-compose")
    return ([legacy] if legacy else None), None


def _env_value(text: str) -> str:
    """A value for an env file: plain, single-quoted, or double-quoted with escapes."""
    if _PLAIN.match(text):
        return text
    if "'" not in text and "\n" not in text:
        return f"'{text}'"
    escaped = json.dumps(text)[1:-1].replace("$", "\\$")
    return f'"{escaped}"'


def _env_files(value: Any) -> list[tuple[list[str], str]]:
    """Heat's ``env_files`` input, ``[{file_name, content}]`` (or that list as JSON),
    as (path parts in the project, content)."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadDocument("input env_files is not a JSON list") from None
    if not isinstance(value, list):
        raise BadDocument("input env_files is not a list of {file_name, content}")
    files = []
    for item in value:
        name = item.get("file_name") if isinstance(item, dict) else None
        content = item.get("content") if isinstance(item, dict) else None
        if not isinstance(name, str) or not isinstance(content, str):
            raise BadDocument("input env_files is not a list of {file_name, content}")
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise BadDocument(f"env file name {name!r} is not a relative path in the project")
        files.append((parts, content))
    return files


def _detail(stdout: str, stderr: str) -> str | None:
    return first_line(stderr, r"(?i)error") or first_line(stdout, r"(?i)error")
