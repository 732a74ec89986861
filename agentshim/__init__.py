"""setpoint's agent: poll the server's pointer, run each derived config through its
hook, report back.

It runs on every server, so it stays light: it uses ``store`` (blobs, pointer,
report) and the standard library, never the controller, git or cloud SDKs.

The modules, by what they do:

- ``cli``: the ``setpoint-agent`` command; ``agent``: ``Agent``, one cycle
  (``run_once``) and the loop, wiring the parts below through one
  ``context.AgentContext``; ``cycle``: what a cycle did (``CycleResult``).
- Following the pointer: ``pointer`` (conditional poll, accept whole or
  refuse), ``admission`` (signature, server, anti-rollback) with ``trust``
  (which keys are believed), ``relocate`` (following ``moved_to``),
  ``renewal`` (capability URLs), ``configs`` and ``files`` (derived configs
  and their files, fetched, verified, cached, pruned).
- Deciding what is due: ``due`` (which action runs now, retry backoff) and
  ``converge`` (each deployment of the manifest in order, then DELETE what left).
- Running hooks: ``running`` (one attempt: the hook document, in-flight marker,
  logs), ``hooks`` (the runner: an executable hook or a built-in tool),
  ``contract`` (``HookResult``, ``ToolCall``: what the runner and the tools
  share), ``processes`` (process groups, deadlines, leftover hooks), ``limits``
  (the bounds on outputs and tails), ``tools`` (the built-in tools).
- Keeping state: ``state`` (the state dir, written atomically) and ``ledger``
  (each outcome recorded, with its retry, logged and committed).
- Reporting: ``reporting`` (the report, written when it changed and at least
  once a heartbeat, and the check for another agent with this server's name);
  ``logs``, ``errors``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
