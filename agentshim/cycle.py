"""What one cycle of the agent did, and how the agent stands after it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CycleResult:
    """What one cycle did, and how the agent stands after it."""

    generation: int
    manifest: str | None
    ran: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    error: str | None = None
    store_error: str | None = None
    # The store's hint (seconds) for when to try again, from its TransientError.
    store_retry_after: float | None = None
    stopped: bool = False

    @property
    def exit_code(self) -> int:
        """3: the store could not be read or written; 1: a deployment is FAILED or the
        pointer was refused; 0: converged as far as the rules allow."""
        if self.store_error is not None:
            return 3
        if self.failing or self.error is not None:
            return 1
        return 0
