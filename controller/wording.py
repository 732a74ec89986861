"""Words for people: counts with their nouns, so no message says "1 servers"."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """``1 stack``, ``2 stacks``: a count with its noun (regular plurals only)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
