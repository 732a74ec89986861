"""What only ``LocalStore`` promises: atomic files, create-if-absent, 0644."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.store import atomic_files, local
from setpoint.store.base import blob_key, pointer_key, report_key
from setpoint.store.digest import digest_bytes
from setpoint.store.documents import Pointer, Report
from setpoint.store.errors import ConditionFailed, TransientError
from setpoint.store.local import LocalStore


@pytest.fixture
def umask_077() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def _pointer(generation: int) -> Pointer:
    return Pointer("web-1", generation, digest_bytes(b"m%d" % generation), "0" * 40, "now")


def _report() -> Report:
    return Report("web-1", 1, None, "now")


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for i in range(5):
        store.put_blob(f"blob {i}".encode())
        store.put_blob(f"blob {i}".encode())  # the no-op second put too
    previous = None
    for generation in (1, 2, 3):
        store.write_pointer(_pointer(generation), previous)
        previous = _pointer(generation)
    store.write_report(_report())
    assert _temp_files(tmp_path) == []
    assert len(store.list_blobs()) == 5


def test_failed_replace_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    store.write_pointer(_pointer(1), None)

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TransientError):
        store.write_pointer(_pointer(2), _pointer(1))
    assert _temp_files(tmp_path) == []
    monkeypatch.undo()
    assert store.read_pointer("web-1") == _pointer(1)


def test_concurrent_put_of_the_same_blob_writes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers = 8
    data = b"raced" * 1000
    # Every writer passes the existence check and stages its temp file before
    # any of them links it into place: the race is forced, not hoped for.
    barrier = threading.Barrier(writers, timeout=60)  # a hang guard
    original = atomic_files.write_temp

    def staged(path: Path, payload: bytes, mode: int = 0o600) -> Path:
        tmp = original(path, payload, mode)
        barrier.wait()
        return tmp

    monkeypatch.setattr(local, "write_temp", staged)
    stores = [LocalStore(tmp_path) for _ in range(writers)]
    digests: list[str] = []
    errors: list[BaseException] = []

    def put(store: LocalStore) -> None:
        try:
            digests.append(store.put_blob(data))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert digests == [digest_bytes(data)] * writers
    assert sum(s.stats.bytes_written for s in stores) == len(data)
    assert _temp_files(tmp_path) == []
    assert LocalStore(tmp_path).get_blob(digests[0]) == data


@pytest.mark.usefixtures("umask_077")
def test_files_are_0644_whatever_the_umask(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digest = store.put_blob(b"readable by the agent")
    store.write_pointer(_pointer(1), None)
    store.write_report(_report())
    for key in (blob_key(digest), pointer_key("web-1"), report_key("web-1")):
        mode = stat.S_IMODE((tmp_path / key).stat().st_mode)
        assert mode == 0o644, (key, oct(mode))
    assert store.get_blob(digest) == b"readable by the agent"


def test_etag_and_bytes_come_from_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    writer = LocalStore(tmp_path)
    store.write_pointer(_pointer(1), None)
    real_fstat = os.fstat
    calls = 0

    def fstat_then_replace(fd: int) -> os.stat_result:
        # The controller replaces the pointer in the middle of the poll.
        nonlocal calls
        calls += 1
        result = real_fstat(fd)
        if calls == 1:
            writer.write_pointer(_pointer(2), _pointer(1))
        return result

    monkeypatch.setattr(os, "fstat", fstat_then_replace)
    got = store.poll_pointer("web-1", None)
    monkeypatch.undo()
    assert got is not None
    pointer, etag = got
    # Whatever was returned, its etag belongs to those bytes, so the
    # replacement is seen on the next poll rather than lost.
    if pointer.generation == 1:
        fresh = store.poll_pointer("web-1", etag)
        assert fresh is not None
        assert fresh[0] == _pointer(2)
    else:
        assert store.poll_pointer("web-1", etag) is None


def test_stats_count_a_lost_conditional_write_and_a_failed_one(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    version = store.write_controller_doc_if("ledger", {"n": 1}, None)
    store.write_controller_doc_if("ledger", {"n": 2}, version)
    with pytest.raises(ConditionFailed):
        store.write_controller_doc_if("ledger", {"n": 3}, version)  # another writer came first
    digest = digest_bytes(b"blob")
    (tmp_path / "store" / blob_key(digest)).mkdir(parents=True)  # a folder where a blob goes
    with pytest.raises(TransientError):
        store.get_blob(digest)
    counts = store.stats.outcome_counts()
    assert counts[("put_if_match", "ok")] == 2
    assert counts[("put_if_match", "conflict")] == 1
    assert counts[("get", "error")] == 1
