"""Progress of a long ``reconcile --wait``: a bar on a terminal, plain lines otherwise.

On a terminal one line is redrawn in place (servers converged out of all, and
each rollout's batch); in a log or a CI job each pass that changes the picture
prints one plain line, so the log tells the story without carriage returns.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from setpoint.controller.converge.reconcile import PassOutcome

BAR_WIDTH = 30


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = 0 if total == 0 else round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


@dataclass
class Progress:
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    tty: bool | None = None
    _last: str = ""
    _drawn: bool = False

    def __post_init__(self) -> None:
        if self.tty is None:
            self.tty = self.stream.isatty()

    def line(self, outcome: PassOutcome) -> str:
        if not self.tty:
            return outcome.summary()
        done = sum(s.converged for s in outcome.servers.values())
        parts = [bar(done, len(outcome.servers))]
        for name, rollout in sorted(outcome.ledger.rollouts.items()):
            p = rollout.progress
            if p:
                parts.append(f"{name} batch {p['batch']}/{p['batches']}")
        if outcome.failed:
            parts.append(f"{len(outcome.failed)} failed")
        return "  ".join(parts)

    def __call__(self, outcome: PassOutcome) -> None:
        text = self.line(outcome)
        if text == self._last:
            return
        self._last = text
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line so what follows starts on its own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
