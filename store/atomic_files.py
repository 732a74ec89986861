"""Durable file replacement on a local disk: write a temporary file beside the
target, fsync it, rename it into place, fsync the directory.

A reader (or a crash, or a reboot) sees the old bytes or the new ones, never
half of either. The local store writes its objects this way and the agent its
state, so the one procedure lives here, in the layer both import.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".tmp-"
"""Temporary files start with this; listings skip them."""


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """A fsynced temporary file holding ``data`` beside ``path`` (creating its
    directory); the caller renames or links it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> os.stat_result:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync the directory.

    Returns the new file's ``stat`` (taken before the rename, which keeps
    inode and mtime), so a caller can name exactly these bytes' version even
    if another writer replaces the file right after.
    """
    tmp = write_temp(path, data, mode)
    try:
        written = os.stat(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return written
