"""A store in a local directory: the default, and what a single host needs.

Every write goes to a temporary file in the same directory, is fsynced, and is
renamed into place, so a reader (or a crash) never sees half an object.
Blobs are created with ``os.link`` from the temporary file, which fails if the
name exists: create-if-absent without a race between two writers.

A conditional replace (``_put_if_match``, the controller's lease and fenced
writes) compares the version and renames while holding an exclusive ``flock``
on a lock file beside the object; the kernel drops that lock when its process
dies, so a controller killed mid-write never leaves the object locked (a lock
file made with ``O_EXCL`` would stay behind after a ``kill -9``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from setpoint.store.atomic_files import TEMP_PREFIX, fsync_dir, write_atomic, write_temp
from setpoint.store.base import Store
from setpoint.store.errors import (
    ConditionFailed,
    NotFound,
    PermissionDenied,
    StoreError,
    TransientError,
)

LOCK_PREFIX = ".lock-"
"""The lock file beside an object written by ``_put_if_match``."""


def _etag(st: os.stat_result) -> str:
    # Every replacement is a rename to a new inode, so (inode, size, mtime)
    # changes with every write.
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


class LocalStore(Store):
    def __init__(self, root: str | os.PathLike[str], workers: int | None = None) -> None:
        super().__init__(workers=workers)
        self.root = Path(root).absolute()

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        # Keys are built by the Store from validated parts; this is a last guard.
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"refusing key outside the store: {key!r}")
        return self.root / key

    @contextlib.contextmanager
    def _translate(self, key: str):  # type: ignore[no-untyped-def]
        try:
            yield
        except FileNotFoundError as exc:
            raise NotFound(key) from exc
        except PermissionError as exc:
            raise PermissionDenied(key, str(exc)) from exc
        except OSError as exc:
            raise TransientError(f"local store I/O error on {key}: {exc}") from exc

    def _get(self, key: str) -> bytes:
        with self._translate(key):
            return self._path(key).read_bytes()

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        path = self._path(key)
        with self._translate(key), path.open("rb") as f:
            # A poll costs one open and fstat. The etag and the bytes both
            # come from the open file, so a replacement between the two can
            # never pair new etag, old bytes.
            current = _etag(os.fstat(f.fileno()))
            if etag == current:
                return None
            return f.read(), current

    def _put(self, key: str, data: bytes) -> str:
        with self._translate(key):
            # The version of exactly these bytes, whatever another writer does after.
            return _etag(write_atomic(self._path(key), data, 0o644))

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if path.exists():
            return False
        with self._translate(key):
            tmp = write_temp(path, data, 0o644)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            fsync_dir(path.parent)
            return True

    def _put_if_match(self, key: str, data: bytes, version: str | None) -> str:
        path = self._path(key)
        with self._translate(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            # Kept for good (the next writer locks the same inode): not a
            # temporary file that fsck reports and gc removes; listings skip it.
            lock_path = path.parent / f"{LOCK_PREFIX}{path.name}"
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    current: str | None = _etag(os.stat(path))
                except FileNotFoundError:
                    current = None
                if current != version:
                    raise ConditionFailed(key, version)
                if version is not None:
                    return _etag(write_atomic(path, data, 0o644))
                tmp = write_temp(path, data, 0o644)
                try:
                    new = _etag(os.stat(tmp))
                    os.link(tmp, path)  # exclusive create: fails if the name exists
                finally:
                    os.unlink(tmp)
                fsync_dir(path.parent)
                return new
            finally:
                os.close(lock)  # releases the flock

    def _exists(self, keys: list[str]) -> set[str]:
        return {k for k in keys if self._path(k).exists()}

    def _list(self, prefix: str) -> list[str]:
        return sorted(self._walk(prefix))

    def _list_versions(self, prefix: str) -> dict[str, str]:
        return dict(sorted(self._walk(prefix).items()))

    def _walk(self, prefix: str) -> dict[str, str]:
        """Every object under ``prefix`` with its version, from one ``scandir`` per
        directory: its entries carry what ``stat`` says, so a fleet of 10,000
        servers lists in a fraction of a second (``os.walk`` and a ``stat`` per
        key took seconds)."""
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        out: dict[str, str] = {}
        pending = [(str(base), base.relative_to(self.root).as_posix())]
        while pending:
            folder, rel = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue  # absent, or removed since its parent was read
            for entry in entries:
                key = f"{rel}/{entry.name}" if rel != "." else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, key))
                elif entry.is_dir():
                    continue  # a link to a folder, which os.walk did not follow either
                elif not entry.name.startswith((TEMP_PREFIX, LOCK_PREFIX)):
                    with contextlib.suppress(FileNotFoundError):  # deleted since the scan
                        out[key] = _etag(entry.stat())
        return out

    def temp_files(self) -> dict[str, float]:
        """Leftover ``.tmp-*`` files of writes killed before their rename, by path
        relative to the root, with each one's mtime (``setpoint fsck`` and ``gc``)."""
        out = {}
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(".tmp-"):
                    path = Path(dirpath, name)
                    with contextlib.suppress(FileNotFoundError):  # its write just finished
                        out[path.relative_to(self.root).as_posix()] = path.stat().st_mtime
        return dict(sorted(out.items()))

    def remove_temp_file(self, rel: str) -> None:
        """Remove one leftover ``temp_files`` listed; absent is not an error."""
        path = self._path(rel)
        if not path.name.startswith(".tmp-"):
            raise StoreError(f"not a temporary file: {rel!r}")
        with self._translate(rel), contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _delete(self, key: str) -> None:
        with self._translate(key), contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
