"""The one ``Store`` class that holds the logic; backends only move bytes.

Layout (relative to the store root):

- ``blobs/<2 hex>/<62 hex>``: write-once, content-addressed, verified on read.
- ``agents/<server>/pointer``: replaced by the controller only.
- ``agents/<server>/report``: written by that server's agent only.
- ``controller/<name>``: small JSON documents the controller keeps for itself
  (rollout and quarantine state); written by the controller only.

A backend implements the ``_``-prefixed methods. Everything else (hashing on
put, verifying on get, generation checks, request accounting) lives here, so
every backend behaves the same and one contract suite tests them all.
"""

from __future__ import annotations

import abc
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from setpoint.store.digest import canonical_json, check_digest, digest_bytes, hex_of
from setpoint.store.documents import Pointer, Report, is_server_name, loads_object
from setpoint.store.errors import (
    ConditionalWriteUnsupported,
    ConditionFailed,
    DigestMismatch,
    GenerationRegression,
    InvalidDocument,
    NotFound,
    TransientError,
)
from setpoint.store.pool import WorkerPool
from setpoint.store.retry import NO_RETRY, Retry

T = TypeVar("T")

BLOBS = "blobs/"
AGENTS = "agents/"
CONTROLLER = "controller/"
_DOC_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def blob_key(digest: str) -> str:
    hexd = hex_of(digest)
    return f"{BLOBS}{hexd[:2]}/{hexd[2:]}"


def digest_of_blob_key(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != BLOBS:
        return None
    return "blake3:" + parts[1] + parts[2]


def _server_key(server: str, name: str) -> str:
    if not is_server_name(server):
        raise InvalidDocument("server name", f"{server!r} is not a valid server name")
    return f"{AGENTS}{server}/{name}"


def _controller_key(name: str) -> str:
    if not name or not set(name) <= _DOC_NAME_CHARS:
        raise InvalidDocument("controller document name", f"{name!r} is not a valid name")
    return f"{CONTROLLER}{name}"


def pointer_key(server: str) -> str:
    return _server_key(server, "pointer")


def report_key(server: str) -> str:
    return _server_key(server, "report")


def agent_key(server: str, name: str) -> str:
    """Another object under ``agents/<server>/`` (Heat-agent metadata, signals)."""
    return _server_key(server, name)


def _is_wire(op: str) -> bool:
    return op.startswith("http.") or op == "retries"


@dataclass
class StoreStats:
    """Requests and bytes through this store object, by operation.

    Operations: ``get``, ``get_if_changed`` (a 304 counts in ``not_modified``),
    ``put``, ``put_if_absent``, ``put_if_match``, ``exists``, ``list``, ``delete``. Backends that
    speak HTTP also count every real request as ``http.<METHOD>`` (and resent
    ones as ``retries``): ``total`` is the logical operations, ``http`` the
    requests that reached the network.

    ``outcomes`` counts how logical operations ended other than well, by
    (operation, outcome): ``not_modified`` (a 304), ``not_found``, ``conflict``
    (a conditional write lost) or ``error`` (anything else raised); the rest
    of ``requests[op]`` ended ``ok`` (``outcome_counts``).

    Calls run side by side on ``Store.pool``, so every change goes through
    ``count``, under a lock (``requests[op] += 1`` is a read then a write: two
    threads would lose a count). Read the fields once the calls are done.
    """

    requests: Counter[str] = field(default_factory=Counter)
    bytes_read: int = 0
    bytes_written: int = 0
    not_modified: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def count(
        self, op: str | None = None, *, read: int = 0, written: int = 0, not_modified: int = 0
    ) -> None:
        """One ``op`` (when given) and the bytes moved, from any thread."""
        with self._lock:
            if op is not None:
                self.requests[op] += 1
            self.bytes_read += read
            self.bytes_written += written
            self.not_modified += not_modified

    @contextmanager
    def request(self, op: str, *, written: int = 0) -> Iterator[None]:
        """Count one ``op`` (and the bytes it writes), and how it ended if not well."""
        self.count(op, written=written)
        try:
            yield
        except NotFound:
            self.ended(op, "not_found")
            raise
        except ConditionFailed:
            self.ended(op, "conflict")
            raise
        except BaseException:
            self.ended(op, "error")
            raise

    def ended(self, op: str, outcome: str) -> None:
        with self._lock:
            self.outcomes[op, outcome] += 1
            if outcome == "not_modified":
                self.not_modified += 1

    def outcome_counts(self) -> dict[tuple[str, str], int]:
        """(operation, outcome) -> count, ``ok`` included, for every logical operation."""
        with self._lock:
            requests = dict(self.requests)
            outcomes = dict(self.outcomes)
        out: dict[tuple[str, str], int] = {}
        for op, n in requests.items():
            if _is_wire(op):
                continue
            other = sum(c for (o, _), c in outcomes.items() if o == op)
            out[op, "ok"] = n - other
        out.update(outcomes)
        return dict(sorted(out.items()))

    def wire_counts(self) -> dict[str, int]:
        """Requests that reached the network by method (``http.GET`` -> ``GET``), and
        ``retries``: what a backend that speaks HTTP counted."""
        with self._lock:
            return {
                op.removeprefix("http."): n
                for op, n in sorted(self.requests.items())
                if _is_wire(op)
            }

    @property
    def writes(self) -> int:
        return (
            self.requests["put"]
            + self.requests["put_if_absent"]
            + self.requests["put_if_match"]
            + self.requests["delete"]
        )

    @property
    def total(self) -> int:
        return sum(n for op, n in self.requests.items() if not _is_wire(op))

    @property
    def http(self) -> int:
        return sum(n for op, n in self.requests.items() if op.startswith("http."))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.outcomes.clear()
            self.bytes_read = self.bytes_written = self.not_modified = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "total": self.total,
            "http": self.http,
            "writes": self.writes,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "not_modified": self.not_modified,
        }


class Store(abc.ABC):
    """Content-addressed blobs plus per-server pointers and reports."""

    # Which kind of URLs this backend can hand to agents ("swift", "s3"), if any:
    # a local directory is reached by path, with no capability URLs.
    capability_kind: ClassVar[str | None] = None
    # True where the only conditional write is create-if-absent (Swift accepts
    # only ``If-None-Match: *`` on PUT): a lease is then a series of numbered,
    # create-only objects (``store.lease``) instead of one object replaced
    # with ``_put_if_match``.
    create_only_leases: ClassVar[bool] = False

    def __init__(self, retry: Retry = NO_RETRY, workers: int | None = None) -> None:
        self.stats = StoreStats()
        self.retry = retry
        """How a backend that can meet ``TransientError`` retries one operation."""
        self.pool = WorkerPool(workers)
        """The one pool a pass's independent requests to this store go through:
        ``workers`` at once (default ``$SETPOINT_STORE_WORKERS``, else 32)."""

    def _retrying(self, operation: Callable[[], T], what: str) -> T:
        """``operation`` under ``self.retry``, the one retry loop of every backend;
        each retry is counted in ``stats.requests["retries"]`` (the requests
        themselves as ``http.*``)."""
        return self.retry.call(operation, what, self._count_retry)

    def _count_retry(self, exc: TransientError) -> None:
        self.stats.count("retries")

    # -- what a backend implements: bytes only ---------------------------------

    @abc.abstractmethod
    def _get(self, key: str) -> bytes:
        """The object's bytes; ``NotFound`` if absent."""

    @abc.abstractmethod
    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        """(bytes, etag), or None when ``etag`` still matches; ``NotFound`` if absent."""

    @abc.abstractmethod
    def _put(self, key: str, data: bytes) -> str | None:
        """Replace the object atomically: a reader sees the old or the new bytes.

        Returns the new object's version (what ``_list_versions`` and
        ``_get_if_changed`` give for exactly these bytes) when the write tells
        it, else None.
        """

    @abc.abstractmethod
    def _put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object unless it exists; True when this call wrote it."""

    @abc.abstractmethod
    def _exists(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` exist (one batched request where the backend allows)."""

    @abc.abstractmethod
    def _list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""

    def _put_if_match(self, key: str, data: bytes, version: str | None) -> str:
        """Replace the object only if its version is still ``version`` (None: create it
        only if absent), atomically against every other writer; the new version.
        ``ConditionFailed`` when the object is no longer that version."""
        raise ConditionalWriteUnsupported(
            self.url, f"{type(self).__name__} has no compare-and-swap"
        )

    def _list_versions(self, prefix: str) -> dict[str, str]:
        """Keys under ``prefix`` with each one's version: the etag ``_get_if_changed``
        compares, so an unchanged version means unchanged bytes."""
        raise NotImplementedError(f"{type(self).__name__} cannot list versions")

    @abc.abstractmethod
    def _delete(self, key: str) -> None:
        """Remove the object; absent is not an error."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The URL that opens this store again."""

    # -- accounting wrappers ----------------------------------------------------

    def _read(self, key: str) -> bytes:
        with self.stats.request("get"):
            data = self._get(key)
        self.stats.count(read=len(data))
        return data

    def _write(self, key: str, data: bytes) -> str | None:
        with self.stats.request("put", written=len(data)):
            return self._put(key, data)

    def _read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and their version (one GET), or None if absent."""
        try:
            with self.stats.request("get"):
                data, version = self._get_if_changed(key, None) or (b"", "")
        except NotFound:
            return None
        self.stats.count(read=len(data))
        return data, version

    # -- blobs ------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` under its digest (create-if-absent) and return the digest."""
        digest = digest_bytes(data)
        with self.stats.request("put_if_absent"):
            created = self._put_if_absent(blob_key(digest), data)
        if created:
            self.stats.count(written=len(data))
        return digest

    def put_json_blob(self, value: Any) -> str:
        return self.put_blob(canonical_json(value))

    def get_blob(self, digest: str) -> bytes:
        """The blob's bytes, re-hashed; ``DigestMismatch`` if they do not match."""
        data = self._read(blob_key(check_digest(digest)))
        got = digest_bytes(data)
        if got != digest:
            raise DigestMismatch(digest, got)
        return data

    def get_json_blob(self, digest: str, what: str = "blob") -> dict[str, Any]:
        return loads_object(self.get_blob(digest), what)

    def find_missing(self, digests: Iterable[str]) -> set[str]:
        """The digests among ``digests`` that the store does not hold."""
        wanted = sorted({check_digest(d) for d in digests})
        if not wanted:
            return set()
        with self.stats.request("exists"):
            present = self._exists([blob_key(d) for d in wanted])
        return {d for d in wanted if blob_key(d) not in present}

    def delete_blob(self, digest: str) -> None:
        """Only for garbage collection and tests: blobs are otherwise immutable."""
        with self.stats.request("delete"):
            self._delete(blob_key(digest))

    # -- pointers ---------------------------------------------------------------

    def read_pointer(self, server: str) -> Pointer | None:
        try:
            data = self._read(pointer_key(server))
        except NotFound:
            return None
        return Pointer.from_dict(loads_object(data, "pointer"))

    def poll_pointer(self, server: str, etag: str | None) -> tuple[Pointer, str] | None:
        """The pointer and its etag, or None when it has not changed since ``etag``.

        Raises ``NotFound`` when the server has no pointer yet.
        """
        with self.stats.request("get_if_changed"):
            got = self._get_if_changed(pointer_key(server), etag)
        if got is None:
            self.stats.ended("get_if_changed", "not_modified")
            return None
        data, new_etag = got
        self.stats.count(read=len(data))
        return Pointer.from_dict(loads_object(data, "pointer")), new_etag

    def read_pointer_versioned(self, server: str) -> tuple[Pointer, str] | None:
        """The pointer and its version (as ``list_versions`` gives it), or None."""
        got = self._read_versioned(pointer_key(server))
        if got is None:
            return None
        return Pointer.from_dict(loads_object(got[0], "pointer")), got[1]

    def write_pointer(self, pointer: Pointer, current: Pointer | None) -> str | None:
        """Replace the server's pointer. ``current`` is what the caller last read.

        The generation must grow past ``current``: the caller read the store
        before deciding, and says so, so this costs no extra request. Returns
        the new pointer's version when the backend's write tells it.
        """
        floor = current.generation if current else 0
        if pointer.generation <= floor:
            raise GenerationRegression(pointer.server, floor, pointer.generation)
        return self._write(pointer_key(pointer.server), canonical_json(pointer.to_dict()))

    # -- reports ----------------------------------------------------------------

    def read_report(self, server: str) -> Report | None:
        try:
            data = self._read(report_key(server))
        except NotFound:
            return None
        return Report.from_dict(loads_object(data, "report"))

    def read_report_versioned(self, server: str) -> tuple[Report, str] | None:
        """The report and its version (as ``list_versions`` gives it), or None."""
        got = self._read_versioned(report_key(server))
        if got is None:
            return None
        return Report.from_dict(loads_object(got[0], "report")), got[1]

    def write_report(self, report: Report) -> None:
        self._write(report_key(report.server), canonical_json(report.to_dict()))

    # -- other per-server objects (servers that run Heat's agent) --------------

    def read_agent_object(self, server: str, name: str) -> bytes | None:
        """``agents/<server>/<name>``, or None if absent."""
        try:
            return self._read(agent_key(server, name))
        except NotFound:
            return None

    def write_agent_object(self, server: str, name: str, data: bytes) -> None:
        self._write(agent_key(server, name), data)

    def forget_server(self, server: str) -> list[str]:
        """Delete everything under ``agents/<server>/`` (pointer, report, a Heat
        agent's objects): the server leaves the store on purpose (``setpoint
        forget``). The keys deleted, in order; the pointer goes last, so an
        interrupted call leaves a server that still lists, never a report with
        no pointer to answer."""
        keys = self._list(_server_key(server, ""))
        pointer = pointer_key(server)
        ordered = sorted(k for k in keys if k != pointer) + [k for k in keys if k == pointer]
        for key in ordered:
            self.stats.count("delete")
            self._delete(key)
        return sorted(ordered)

    # -- the controller's own documents -----------------------------------------

    def read_controller_doc(self, name: str) -> dict[str, Any] | None:
        """A JSON object the controller keeps under ``controller/<name>``, or None."""
        try:
            data = self._read(_controller_key(name))
        except NotFound:
            return None
        return loads_object(data, f"controller document {name!r}")

    def write_controller_doc(self, name: str, doc: dict[str, Any]) -> None:
        self._write(_controller_key(name), canonical_json(doc))

    def read_controller_doc_versioned(self, name: str) -> tuple[dict[str, Any], str] | None:
        """The document and its version (what ``write_controller_doc_if`` compares), or None."""
        got = self._read_versioned(_controller_key(name))
        if got is None:
            return None
        return loads_object(got[0], f"controller document {name!r}"), got[1]

    def write_controller_doc_if(self, name: str, doc: dict[str, Any], version: str | None) -> str:
        """Replace the document only if it is still at ``version`` (None: only if
        absent); its new version. ``ConditionFailed`` if another writer came first,
        ``ConditionalWriteUnsupported`` if the backend cannot tell."""
        data = canonical_json(doc)
        with self.stats.request("put_if_match", written=len(data)):
            return self._put_if_match(_controller_key(name), data, version)

    def create_controller_doc(self, name: str, doc: dict[str, Any]) -> bool:
        """Create the document unless it exists; True when this call wrote it."""
        data = canonical_json(doc)
        with self.stats.request("put_if_absent"):
            created = self._put_if_absent(_controller_key(name), data)
        if created:
            self.stats.count(written=len(data))
        return created

    def list_controller_docs(self, prefix: str) -> list[str]:
        """Names of the controller documents whose name starts with ``prefix``."""
        with self.stats.request("list"):
            listed = self._list(CONTROLLER)
        # The whole folder, filtered here: a backend lists by folder or by prefix.
        names = [k[len(CONTROLLER) :] for k in listed]
        return [n for n in names if n.startswith(prefix) and "/" not in n]

    def delete_controller_doc(self, name: str) -> None:
        with self.stats.request("delete"):
            self._delete(_controller_key(name))

    def write_pointer_if(
        self, pointer: Pointer, current: Pointer | None, version: str | None
    ) -> str:
        """``write_pointer``, but only if the stored pointer is still the one read at
        ``version`` (None: still absent); ``ConditionFailed`` otherwise. What a
        controller holding a lease writes with, so a deposed leader's write loses."""
        floor = current.generation if current else 0
        if pointer.generation <= floor:
            raise GenerationRegression(pointer.server, floor, pointer.generation)
        data = canonical_json(pointer.to_dict())
        with self.stats.request("put_if_match", written=len(data)):
            return self._put_if_match(pointer_key(pointer.server), data, version)

    # -- listing ----------------------------------------------------------------

    def list_servers(self) -> list[str]:
        """Servers that have a pointer or a report in this store."""
        with self.stats.request("list"):
            listed = self._list(AGENTS)
        names = {k[len(AGENTS) :].split("/", 1)[0] for k in listed}
        return sorted(n for n in names if is_server_name(n))

    def list_versions(self, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` with its version, in one listing (counted as
        one ``list``; an HTTP backend pages it). The version is the etag
        ``_get_if_changed`` compares: equal versions mean the bytes are the same."""
        with self.stats.request("list"):
            return self._list_versions(prefix)

    def list_blobs(self) -> list[str]:
        with self.stats.request("list"):
            listed = self._list(BLOBS)
        out = []
        for key in listed:
            digest = digest_of_blob_key(key)
            if digest is not None:
                out.append(digest)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
