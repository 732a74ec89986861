"""What the built-in tools share: inputs, files, the environment, outputs, results.

Every tool, like the heat-agents hooks, gets ``heat_outputs_path`` (the path
``<state>/outputs/<config hex>``) and the deployment reads its outputs back from
``$heat_outputs_path.<name>`` files (one trailing newline stripped); the old
files of the same config are removed before each run. A tool that is not
installed fails the deployment with "<command> not found on this server
(<how to install>)", never an empty success.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.agentshim.contract import (
    PASSED_ENV,
    HookResult,
    ToolCall,
    interrupted,
    is_safe_name,
    status_text,
)
from setpoint.agentshim.processes import Outcome, decode
from setpoint.store.atomic_files import write_atomic

OUTPUTS_VAR = "heat_outputs_path"
FILES_INPUT = "setpoint_files_dir"
DETAIL_CHARS = 300
_ENV_NAME = re.compile(r"^[^=\x00]+$")


class BadDocument(Exception):
    """A document the tool cannot run; the deployment fails with this reason."""


@dataclass(frozen=True)
class Prepared:
    """One run's names and places, worked out before the tool starts."""

    hexd: str  # the config's digest without ``blake3:``: names the files of this run
    inputs: dict[str, Any]  # name -> value, the ``deploy_*`` inputs included
    output_names: list[str]
    outputs_base: Path  # $heat_outputs_path
    files: Path | None  # where the config's attached files are, if it has any


def prepare(call: ToolCall) -> Prepared:
    """Check the output names, clear this config's old output files."""
    document = call.document
    names = [str(o["name"]) for o in document.get("outputs") or ()]
    for name in names:
        if not is_safe_name(name):
            raise BadDocument(f"output name {name!r} is not a safe file name")
    hexd = str(document["id"]).removeprefix("blake3:")
    for old in call.outputs_dir.glob(f"{hexd}.*"):
        old.unlink()
    values = {str(i["name"]): i.get("value") for i in document.get("inputs") or ()}
    files = values.get(FILES_INPUT)
    return Prepared(
        hexd=hexd,
        inputs=values,
        output_names=names,
        outputs_base=call.outputs_dir / hexd,
        files=Path(files) if isinstance(files, str) and files else None,
    )


def read_outputs(prepared: Prepared) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for name in prepared.output_names:
        try:
            text = Path(f"{prepared.outputs_base}.{name}").read_text(errors="replace")
        except FileNotFoundError:
            continue
        outputs[name] = text.removesuffix("\n")
    return outputs


def base_env(prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """The agent's PATH, HOME and LANG, and its variables that start with a prefix
    (a tool's own settings, e.g. ``ANSIBLE_``); nothing else of the agent's."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if prefixes and k.startswith(prefixes)})
    return env


def env_name(name: str) -> str:
    """``name`` if it can be (part of) an environment variable's name."""
    if not _ENV_NAME.match(name):
        raise BadDocument(f"input {name!r} cannot be an environment variable")
    return name


def find_command(env: Mapping[str, str], name: str) -> str | None:
    """``name`` as the tool's process will find it (on the PATH it gets)."""
    return shutil.which(name, path=env.get("PATH", os.defpath))


def not_found(command: str, install: str) -> HookResult:
    return HookResult(False, reason=f"{command} not found on this server ({install})")


def config_text(call: ToolCall) -> str:
    """The config as text: text as it is; a map or list as JSON (which is YAML too)."""
    config = call.document.get("config")
    if isinstance(config, str):
        return config
    if isinstance(config, (dict, list)):
        return json.dumps(config, indent=2, sort_keys=True) + "\n"
    raise BadDocument(f"{call.tool} config is neither text nor a map or list")


def write_file(path: Path, text: str, mode: int = 0o600) -> Path:
    """Replace ``path`` (never rewritten in place) with ``text``, private by default."""
    write_atomic(path, text.encode(), mode)
    return path


def resolve(value: str, prepared: Prepared, call: ToolCall) -> str:
    """An option's path: absolute as is; relative to the config's attached files,
    or to the working dir when it has none."""
    path = Path(value)
    if path.is_absolute():
        return value
    return str((prepared.files or call.work) / path)


def option_list(value: Any) -> str:
    """A list option (tags...) as the comma-separated text the tools take."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def first_line(text: str, pattern: str) -> str | None:
    """The first line matching ``pattern`` (a regex), stripped."""
    regex = re.compile(pattern)
    for line in text.splitlines():
        if regex.search(line):
            return line.strip()
    return None


def shorten(text: str, limit: int = DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def finish(
    call: ToolCall,
    prepared: Prepared,
    what: str,
    outcome: Outcome,
    *,
    success: Callable[[int], bool] = lambda code: code == 0,
    meaning: Mapping[int, str] | None = None,
    detail: Callable[[str, str], str | None] | None = None,
) -> HookResult:
    """The result of a tool's run: interrupted, failed (status, what it means, the
    tool's own error line) or succeeded, with the outputs read back either way."""
    failed = interrupted(outcome, what, call.timeout)
    if failed is not None:
        return failed
    stdout, stderr = decode(outcome.stdout), decode(outcome.stderr)
    code = outcome.returncode
    ok = code is not None and success(code)
    reason = None
    if not ok:
        reason = status_text(what, code)
        if meaning and code is not None and code in meaning:
            reason += f" ({meaning[code]})"
        found = detail(stdout, stderr) if detail else None
        if found:
            reason += f": {shorten(found)}"
    return HookResult(ok, read_outputs(prepared), stdout, stderr, code, reason)


def changed_lines(text: str, pattern: str) -> str:
    """The lines of a check-mode run that say what would change (matching
    ``pattern``, a regex), stripped, one per line; "" when none does."""
    regex = re.compile(pattern)
    return "\n".join(line.strip() for line in text.splitlines() if regex.search(line))


def guarded(run: Callable[[ToolCall], HookResult]) -> Callable[[ToolCall], HookResult]:
    """A tool's ``run`` where a ``BadDocument``, or a file it cannot write, becomes a
    failed result (never an exception out of the runner)."""

    @functools.wraps(run)
    def wrapper(call: ToolCall) -> HookResult:
        try:
            return run(call)
        except BadDocument as exc:
            return HookResult(False, reason=str(exc))
        except OSError as exc:
            return HookResult(False, reason=f"cannot prepare the {call.tool} run: {exc}")

    return wrapper
