"""Words for people: counts with their nouns, so no message says "1 servers"."""

from __future__ import annotations

from collections.abc import Callable, Mapping


def counted(n: int, noun: str) -> str:
    """``1 stack``, ``2 stacks``, ``2 batches``: a count with its noun (regular
    plurals only)."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun}es" if noun.endswith(("s", "x", "ch", "sh")) else f"{n} {noun}s"


def commits_named(
    counts: Mapping[str, int], code: Callable[[str], str] = lambda sha: sha[:12], shown: int = 5
) -> str:
    """``pointers name 2 commits: 1a2b3c4d5e6f on 12 servers, 0f9e8d7c6b5a on 4
    servers``: which commits a store's pointers name, most servers first (ties
    by commit, so the words never flicker), at most ``shown`` of them.
    ``code`` dresses a commit (the dashboard puts it in ``<code>``). The
    dashboard's overview and ``setpoint plan --store`` say it alike."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    named = [f"{code(sha)} on {counted(n, 'server')}" for sha, n in ranked[:shown]]
    if len(ranked) > shown:
        named.append(f"and {counted(len(ranked) - shown, 'more commit')}")
    return f"pointers name {counted(len(ranked), 'commit')}: {', '.join(named)}"
