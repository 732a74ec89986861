"""Deterministic directory bundles, shared by the controller and the agent.

A directory named by ``get_file`` travels as a zip, but its *identity* is the
digest of its file list (``tree_digest``): path, mode and per-file digest. A
different zlib build may compress differently; it can never change a config's id.

``make_zip`` never looks at the filesystem: it takes (path, mode, content) and
gives the same bytes in any process, whatever the mtimes, umask or hash seed.
``extract_zip`` refuses anything ``make_zip`` would not have produced that could
escape or surprise: absolute paths, ``..``, symlinks, duplicates, directories;
and anything over MAX_BUNDLE_BYTES or MAX_BUNDLE_FILES, before inflating.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import blake3

from setpoint.store.digest import PREFIX, digest_bytes, digest_json, is_digest
from setpoint.store.errors import BundleError, DigestMismatch

FILE_MODE = 0o644
EXEC_MODE = 0o755
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 9
# The bounds an extracted bundle must keep, whatever its zip declares. A bundle's
# identity (its file list: path, mode, per-file digest) declares no sizes, so the
# agent cannot know a bundle's size before reading its zip: these global maxima
# bound it instead (a few MB of zeros deflate to GBs). The controller's bundles
# come from git directories, far below them.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
MAX_BUNDLE_FILES = 20_000
# How much of an entry is inflated at a time.
CHUNK = 1024 * 1024
_S_IFREG = 0o100000

File = tuple[str, int, bytes]
"""(posix relative path, mode, content)"""


def normalize_mode(mode: int) -> int:
    """0o755 when any exec bit is set, else 0o644: the only two modes a bundle has."""
    return EXEC_MODE if mode & 0o111 else FILE_MODE


def check_path(path: str) -> str:
    """Return ``path`` if it is a safe relative posix path, else raise ``BundleError``.

    No segment may be empty, ``.`` or ``..``; no leading ``/``, no backslash, no NUL.
    """
    if not isinstance(path, str) or not path:
        raise BundleError("empty path", str(path))
    if path.startswith("/"):
        raise BundleError("absolute path", path)
    if "\\" in path or "\x00" in path:
        raise BundleError("backslash or NUL in path", path)
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise BundleError(f"path segment {segment!r} is not allowed", path)
    return path


def _check_listing(paths: Iterable[str]) -> list[str]:
    """Sorted paths, refusing duplicates and a file that is also a directory."""
    ordered = sorted(check_path(p) for p in paths)
    seen: set[str] = set()
    for p in ordered:
        if p in seen:
            raise BundleError("duplicate path", p)
        seen.add(p)
    dirs = {p[:i] for p in ordered for i, c in enumerate(p) if c == "/"}
    clash = dirs & seen
    if clash:
        raise BundleError("path is both a file and a directory", min(clash))
    return ordered


def tree_digest(entries: Iterable[tuple[str, int, str]]) -> str:
    """The identity of a directory: the digest of its sorted (path, mode, digest) list.

    Modes are normalised by the exec bit, so this agrees with what ``make_zip``
    stores and ``extract_zip`` recomputes.
    """
    by_path: dict[str, tuple[int, str]] = {}
    listing = list(entries)
    _check_listing(p for p, _m, _d in listing)
    for path, mode, digest in listing:
        if not is_digest(digest):
            raise BundleError(f"not a blake3 digest: {digest!r}", path)
        by_path[path] = (normalize_mode(mode), digest)
    rows = [[p, m, d] for p, (m, d) in sorted(by_path.items())]
    return digest_json({"kind": "Tree", "entries": rows})


def files_tree_digest(files: Iterable[File]) -> str:
    """``tree_digest`` of files given with their content."""
    return tree_digest((p, m, digest_bytes(data)) for p, m, data in files)


def make_zip(files: Iterable[File]) -> bytes:
    """A deterministic zip of ``files``: sorted entries, fixed time, modes and level."""
    listing = list(files)
    _check_listing(p for p, _m, _d in listing)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, mode, data in sorted(listing, key=lambda f: f[0]):
            info = zipfile.ZipInfo(path, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (_S_IFREG | normalize_mode(mode)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, bytes(data), compresslevel=COMPRESS_LEVEL)
    return buf.getvalue()


def _entry_mode(info: zipfile.ZipInfo) -> int:
    if info.create_system != 3:
        return FILE_MODE  # no unix mode recorded: a plain file
    unix = info.external_attr >> 16
    kind = stat.S_IFMT(unix)
    if kind == stat.S_IFLNK:
        raise BundleError("symlink entry", info.filename)
    if kind not in (0, stat.S_IFREG):
        raise BundleError("entry is not a regular file", info.filename)
    return normalize_mode(unix)


def _listing(zf: zipfile.ZipFile, max_bytes: int, max_files: int) -> list[zipfile.ZipInfo]:
    """The entries of a bundle, checked before anything is inflated: how many, the
    sizes they declare, their paths and kinds. Sorted by path."""
    infos = zf.infolist()
    if len(infos) > max_files:
        raise BundleError(f"{len(infos)} entries: more than {max_files}")
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes:
        raise BundleError(f"declares {declared} bytes uncompressed: more than {max_bytes}")
    for info in infos:
        if info.is_dir():
            raise BundleError("directory entry", info.filename)
        if info.flag_bits & 0x1:
            raise BundleError("encrypted entry", info.filename)
    _check_listing(info.filename for info in infos)
    return sorted(infos, key=lambda info: info.filename)


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """An entry's content in chunks, never more than the size it declares.

    ``zipfile`` itself stops at the declared size and then checks the CRC, so a
    stream that inflates further fails there; the count here does not depend on it.
    """
    left = info.file_size
    with zf.open(info) as src:
        while chunk := src.read(min(CHUNK, left + 1)):
            if len(chunk) > left:
                raise BundleError(
                    f"inflates beyond its declared {info.file_size} bytes", info.filename
                )
            left -= len(chunk)
            yield chunk
    if left:
        raise BundleError(
            f"inflates to less than its declared {info.file_size} bytes", info.filename
        )


@contextlib.contextmanager
def _open_zip(data: bytes) -> Iterator[zipfile.ZipFile]:
    """The zip, with the zip library's failures as ``BundleError``."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            yield zf
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise BundleError(f"not a readable zip: {exc}") from exc


def read_zip(
    data: bytes, max_bytes: int = MAX_BUNDLE_BYTES, max_files: int = MAX_BUNDLE_FILES
) -> list[File]:
    """The files of a bundle, validated, sorted by path; nothing touches the disk.

    At most ``max_files`` entries declaring at most ``max_bytes`` together
    (checked before inflating), each inflated no further than it declares.
    """
    with _open_zip(data) as zf:
        return [
            (info.filename, _entry_mode(info), b"".join(_inflate(zf, info)))
            for info in _listing(zf, max_bytes, max_files)
        ]


def extract_zip(
    data: bytes,
    dest: Path,
    expected: str | None = None,
    max_bytes: int = MAX_BUNDLE_BYTES,
    max_files: int = MAX_BUNDLE_FILES,
) -> str:
    """Extract a bundle into ``dest`` and return its recomputed tree digest.

    ``dest`` must not exist or be an empty directory. The bounds are those of
    ``read_zip``; each file is streamed to disk (hashed on the way), so memory
    stays small whatever the bundle holds. Files are written to a temporary
    sibling and renamed into place, so ``dest`` only ever appears complete.
    With ``expected``, a tree digest that differs raises ``DigestMismatch`` and
    nothing is left behind. Local I/O failures propagate as ``OSError``.
    """
    dest = Path(dest)
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise BundleError("destination exists and is not an empty directory", str(dest))
    with _open_zip(data) as zf:
        infos = _listing(zf, max_bytes, max_files)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            os.chmod(tmp, EXEC_MODE)
            rows = [(info.filename, *_write_entry(zf, info, tmp)) for info in infos]
            got = tree_digest(rows)
            if expected is not None and got != expected:
                raise DigestMismatch(expected, got)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    with contextlib.suppress(OSError):
        os.chmod(dest, EXEC_MODE)
    return got


def _write_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> tuple[int, str]:
    """Stream one entry to its file under ``root``; its (mode, digest)."""
    mode = _entry_mode(info)
    target = root.joinpath(*info.filename.split("/"))
    for parent in reversed(target.relative_to(root).parents[:-1]):
        d = root / parent
        if not d.is_dir():
            d.mkdir()
            os.chmod(d, EXEC_MODE)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    hasher = blake3.blake3()
    fd = os.open(target, flags, mode)
    with os.fdopen(fd, "wb") as f:
        for chunk in _inflate(zf, info):
            hasher.update(chunk)
            f.write(chunk)
        os.fchmod(f.fileno(), mode)  # exact mode, whatever the umask
    return mode, PREFIX + hasher.hexdigest()
