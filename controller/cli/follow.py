"""Follow mode (``setpoint status --watch``): show a view again every interval.

On a terminal the screen is redrawn in place, as ``watch(1)`` does. Anywhere
else (a pipe, a log file, CI) redrawing would write escape codes and repeat
the whole view each time, so only the lines that changed are printed, each
with the time it was seen; a line that disappears is printed once as gone.
A view is ``(screen, lines)``: the text a terminal shows, and the lines a log
gets, keyed by what they are about (a server and a deployment).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

# Home the cursor, clear the screen: what ``watch(1)`` and ``clear`` write.
CLEAR = "\x1b[H\x1b[2J"

View = tuple[str, dict[str, str]]


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
) -> None:
    """Show ``view()`` every ``interval`` seconds until interrupted (or ``passes``
    views, for tests). Ctrl-C is the caller's to catch: it ends a follow."""
    terminal = out.isatty()
    shown: dict[str, str] = {}
    done = 0
    while passes is None or done < passes:
        screen, lines = view()
        now = clock()
        if terminal:
            out.write(f"{CLEAR}every {interval:g}s: {title}  {_stamp(now)}\n\n{screen}\n")
        else:
            changed = [line for key, line in lines.items() if shown.get(key) != line]
            changed += [f"{shown[key]}  (gone)" for key in shown if key not in lines]
            out.writelines(f"{_stamp(now)}  {line}\n" for line in changed)
            shown = dict(lines)
        out.flush()
        done += 1
        if passes is None or done < passes:
            sleep(interval)
