"""The agent's errors: one root, data in fields."""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error raised by the agentshim package."""


class StateError(AgentError):
    """The on-disk state cannot be read, written or locked."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"agent state {path}: {reason}")
        self.path = path
        self.reason = reason


class RefusedDocument(AgentError):
    """A manifest or derived config the agent will not run (unsafe name, bad shape)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"refused {what}: {reason}")
        self.what = what
        self.reason = reason


class FilesError(AgentError):
    """A config's attached files could not be materialized as published."""

    def __init__(self, config: str, reason: str) -> None:
        super().__init__(f"files of config {config}: {reason}")
        self.config = config
        self.reason = reason
