"""Follow mode (``setpoint status --watch``): show a view again every interval.

On a terminal the screen is redrawn in place, as ``watch(1)`` does. Anywhere
else (a pipe, a log file, CI) redrawing would write escape codes and repeat
the whole view each time, so only the lines that changed are printed, each
with the time it was seen; a line that disappears is printed once as gone.
A view is ``(screen, lines)``: the text a terminal shows, and the lines a log
gets, keyed by what they are about (a server and a deployment).

With ``json_lines`` (``status --watch --json``, for log shippers) each line is
a JSON object, terminal or not: one per changed row, with ``time`` and
``gone`` (true once, when the row disappears) added to the row's fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

# Home the cursor, clear the screen: what ``watch(1)`` and ``clear`` write.
CLEAR = "\x1b[H\x1b[2J"

# (screen, lines): a line is text, or a JSON object's fields with ``json_lines``.
View = tuple[str, dict[str, Any]]


def _stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def follow(
    view: Callable[[], View],
    out: TextIO,
    interval: float,
    title: str,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    passes: int | None = None,
    json_lines: bool = False,
) -> None:
    """Show ``view()`` every ``interval`` seconds until interrupted (or ``passes``
    views, for tests). Ctrl-C is the caller's to catch: it ends a follow."""
    redraw = out.isatty() and not json_lines
    shown: dict[str, Any] = {}
    done = 0
    while passes is None or done < passes:
        screen, lines = view()
        now = clock()
        if redraw:
            out.write(f"{CLEAR}every {interval:g}s: {title}  {_stamp(now)}\n\n{screen}\n")
        else:
            changed = [(line, False) for key, line in lines.items() if shown.get(key) != line]
            changed += [(shown[key], True) for key in shown if key not in lines]
            out.writelines(_logged(_stamp(now), line, gone, json_lines) for line, gone in changed)
            shown = dict(lines)
        out.flush()
        done += 1
        if passes is None or done < passes:
            sleep(interval)


def _logged(stamp: str, line: Any, gone: bool, json_lines: bool) -> str:
    if json_lines:
        return json.dumps({"time": stamp, **line, "gone": gone}) + "\n"
    return f"{stamp}  {line}{'  (gone)' if gone else ''}\n"
