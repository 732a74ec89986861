"""Helpers the object-store backends (S3, Swift) share: key prefixes and batched probes."""

from __future__ import annotations

from collections.abc import Callable

from setpoint.store.pool import WorkerPool


def norm_prefix(prefix: str) -> str:
    """``a/b`` or ``/a/b/`` → ``a/b/``; empty stays empty."""
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def common_dir(keys: list[str]) -> str:
    """The longest common prefix of ``keys`` (not empty), cut after its last ``/``."""
    first, last = min(keys), max(keys)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[: first.rfind("/", 0, n) + 1]


# list_page(list_prefix, start_after) -> (full object names in order, listing complete)
ListPage = Callable[[str, str], tuple[list[str], bool]]


def probe(
    keys: list[str], prefix: str, list_page: ListPage, head: Callable[[str], bool]
) -> set[str]:
    """Which of ``keys`` exist, by listing pages that skip the gaps between them.

    The wanted keys are sorted; each request is a listing page starting just
    before the first key not yet decided, so it decides that key and every
    wanted key up to the page's last name; the last undecided key alone costs
    one HEAD instead. A probe therefore never costs more requests than a HEAD
    per key, and on a store of N blobs about min(wanted keys, N / page size):
    one request for a small store, at most one per new blob for a fresh
    publish into a large one. (A page per ``blobs/<2 hex>/`` prefix would cost
    up to 256 requests even on an empty store; a HEAD per key, one per key
    always.)
    """
    wanted = sorted(set(keys))
    found: set[str] = set()
    if not wanted:
        return found
    list_prefix = prefix + common_dir(wanted)
    start_after = ""
    i = 0
    while i < len(wanted):
        if i == len(wanted) - 1:
            if head(wanted[i]):
                found.add(wanted[i])
            break
        start_after = max(start_after, prefix + wanted[i][:-1])
        names, complete = list_page(list_prefix, start_after)
        got = {n[len(prefix) :] for n in names}
        last = names[-1][len(prefix) :] if names else ""
        while i < len(wanted) and (complete or wanted[i] <= last):
            if wanted[i] in got:
                found.add(wanted[i])
            i += 1
        if names:
            start_after = names[-1]
    return found


# Fewer wanted keys than this in a slice and splitting saves no time: one
# listing page decides them all anyway.
MIN_KEYS_PER_SLICE = 8


def probe_side_by_side(
    keys: list[str], pool: WorkerPool, probe_slice: Callable[[list[str]], set[str]]
) -> set[str]:
    """Which of ``keys`` exist: ``probe_slice`` (a ``probe``) on contiguous slices of
    the sorted keys, up to ``pool.size`` of them at once.

    A fresh publish into a large store costs about a request per new blob
    whichever way it is probed; in slices those requests run side by side. Each
    slice keeps ``probe``'s bounds (no more requests than a HEAD per key), so the
    whole never costs more than a HEAD per key either, and at most one listing
    of the store plus two requests per slice.
    """
    wanted = sorted(set(keys))
    slices = max(1, min(pool.size, len(wanted) // MIN_KEYS_PER_SLICE))
    if slices == 1:
        return probe_slice(wanted)
    size, extra = divmod(len(wanted), slices)
    parts: list[list[str]] = []
    start = 0
    for n in range(slices):
        end = start + size + (1 if n < extra else 0)
        parts.append(wanted[start:end])
        start = end
    found: set[str] = set()
    for got in pool.map(probe_slice, parts):
        found |= got
    return found
