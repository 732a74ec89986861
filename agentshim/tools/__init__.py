"""The built-in tools: one module per tool, each following its heat-agents hook.

A tool module has ``run(call: ToolCall) -> HookResult`` and a one-line
``PASSES`` summary of what it hands the tool; one that can run in check mode
(``ToolCall.check``: say what would change, change nothing) says how in
``CHECK_MODE``. Modules are imported on first use,
so the agent only loads the tools it runs, and none imports more than the
standard library: every tool itself runs as a subprocess.

A ``<hooks-dir>/<tool>`` executable takes precedence over the built-in tool of
the same name (see ``agentshim.hooks``); the types a tool takes and returns
are in ``agentshim.contract``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from setpoint.agentshim.contract import HookResult, ToolCall

    Tool = Callable[[ToolCall], HookResult]

# tool name (the ``group`` of Heat's document) -> module in this package
BUILTIN_TOOLS: dict[str, str] = {
    "script": "script",
    "ansible": "ansible",
    "puppet": "puppet",
    "salt": "salt",
    "chef": "chef",
    "docker-compose": "docker_compose",
}


def builtin_tool(tool: str) -> Tool | None:
    """The built-in tool's ``run``, or None when ``tool`` is not built in."""
    module = BUILTIN_TOOLS.get(tool)
    if module is None:
        return None
    return cast("Tool", importlib.import_module(f"{__name__}.{module}").run)


def check_mode(tool: str) -> str | None:
    """How the built-in tool runs in check mode (its ``CHECK_MODE``), or None when
    it has none (``script``: a component gives it a CHECK config instead)."""
    module = BUILTIN_TOOLS.get(tool)
    if module is None:
        return None
    found = getattr(importlib.import_module(f"{__name__}.{module}"), "CHECK_MODE", None)
    return str(found) if found is not None else None


def summaries() -> dict[str, str]:
    """Each built-in tool's one-line summary of what it passes to the tool."""
    return {
        tool: str(importlib.import_module(f"{__name__}.{module}").PASSES)
        for tool, module in BUILTIN_TOOLS.items()
    }


__all__ = ["BUILTIN_TOOLS", "builtin_tool", "check_mode", "summaries"]
