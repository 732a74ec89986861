"""The controller's errors: one root, data in fields.

Definition problems are collected, not raised one at a time: a commit is
checked completely and every ``Problem`` is reported at once, each naming the
file, line and field, so one push shows everything there is to fix.
"""

from __future__ import annotations

from dataclasses import dataclass


class SetpointError(Exception):
    """Root of every error the controller raises."""


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in the definitions: where it is and what is wrong."""

    file: str
    line: int
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "severity": self.severity,
        }


class InvalidDefinitions(SetpointError):
    """The commit's definitions have errors; nothing from it may be published."""

    def __init__(self, commit: str, problems: list[Problem]) -> None:
        self.commit = commit
        self.problems = sorted(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(
            f"{count} error{'s' if count != 1 else ''} in the definitions at {commit[:12]}:\n"
            f"{lines}"
        )
