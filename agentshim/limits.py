"""The bounds on what a hook gives back, so that a report stays small.

A report is rewritten after every change and at least once a heartbeat, and
the controller reads every server's report each pass: one output of 50 MB
would be 50 MB per beat per server. So:

- each output value is at most MAX_OUTPUT_BYTES (its UTF-8 text, or its JSON
  when it is not text), and the outputs of one deployment at most
  MAX_DEPLOYMENT_OUTPUTS_BYTES together. An output over either bound is
  dropped and the run FAILED with a reason naming it and its size: an operator
  sees it, nothing is truncated silently;
- Heat's ``deploy_stdout`` and ``deploy_stderr`` outputs are logs, not values:
  they carry the last MAX_OUTPUT_BYTES of the stream;
- the report's ``stdout_tail`` and ``stderr_tail`` are the last TAIL_BYTES of
  each stream (the full streams, up to ``processes.CAPTURE_BYTES`` each, stay
  in the state dir's logs).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from setpoint.agentshim.contract import HookResult

TAIL_BYTES = 4096
MAX_OUTPUT_BYTES = 64 * 1024
MAX_DEPLOYMENT_OUTPUTS_BYTES = 1024 * 1024


def tail(text: str, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of ``text`` (UTF-8), never a broken character."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", errors="ignore")


def output_size(value: Any) -> int:
    """What a value weighs in the report: its UTF-8 text, or its JSON."""
    if isinstance(value, str):
        return len(value.encode("utf-8", errors="replace"))
    return len(json.dumps(value, sort_keys=True, default=str).encode())


def bounded_outputs(result: HookResult) -> HookResult:
    """The result with every output within the bounds; a run with an output
    over them is FAILED, and the reason names each such output and its size."""
    kept: dict[str, Any] = {}
    refused: list[str] = []
    total = 0
    for name in sorted(result.outputs):
        value = result.outputs[name]
        size = output_size(value)
        if size > MAX_OUTPUT_BYTES:
            refused.append(f"output {name!r} is {size} bytes (at most {MAX_OUTPUT_BYTES})")
        elif total + size > MAX_DEPLOYMENT_OUTPUTS_BYTES:
            refused.append(
                f"output {name!r} ({size} bytes) brings the outputs over"
                f" {MAX_DEPLOYMENT_OUTPUTS_BYTES} bytes"
            )
        else:
            kept[name] = value
            total += size
    if not refused:
        return result
    reason = "; ".join(refused)
    if result.reason:
        reason = f"{result.reason}; {reason}"
    return replace(result, ok=False, outputs=kept, reason=reason)
