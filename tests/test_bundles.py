"""Deterministic bundles: same files, same zip bytes, same tree digest, anywhere."""

from __future__ import annotations

import io
import os
import resource
import stat
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.store.bundles import (
    MAX_BUNDLE_BYTES,
    check_path,
    extract_zip,
    files_tree_digest,
    make_zip,
    read_zip,
    tree_digest,
)
from setpoint.store.digest import digest_bytes
from setpoint.store.errors import BundleError, DigestMismatch, StoreError

ROOT = Path(__file__).resolve().parents[1]

FILES = [
    ("run.sh", 0o755, b"#!/bin/sh\necho hi\n"),
    ("conf/app.yaml", 0o644, b"port: 80\n" * 50),
    ("conf/nested/deep.txt", 0o644, "é unicode\n".encode()),
    ("empty", 0o644, b""),
    ("bin/tool", 0o755, bytes(range(256)) * 4),
]

# A child process builds the zip from files it writes to disk itself, so its
# umask, mtimes, listing order and hash seed all differ from the parent's.
CHILD = r"""
import os, sys, time
from pathlib import Path
from setpoint.store.bundles import make_zip

src, out, order, mtime = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
files = {files!r}
for path, mode, data in files:
    p = src / path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if mode & 0o111:
        os.chmod(p, os.stat(p).st_mode | 0o100)  # exec for the owner only
    os.utime(p, (mtime, mtime))
listing = []
for dirpath, _dirs, names in os.walk(src):
    for name in names:
        p = Path(dirpath, name)
        listing.append((p.relative_to(src).as_posix(), os.stat(p).st_mode, p.read_bytes()))
listing.sort(reverse=(order == "reverse"))
out.write_bytes(make_zip(listing))
"""


def _build_in_child(
    tmp_path: Path, tag: str, seed: str, umask: str, order: str, mtime: int
) -> bytes:
    src, out = tmp_path / f"src-{tag}", tmp_path / f"out-{tag}.zip"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    script = CHILD.replace("{files!r}", repr(FILES))
    cmd = f'umask {umask} && exec "$0" -c "$1" "$2" "$3" "$4" "$5"'
    subprocess.run(
        ["sh", "-c", cmd, sys.executable, script, str(src), str(out), order, str(mtime)],
        env=env,
        cwd=tmp_path,
        check=True,
    )
    return out.read_bytes()


def test_zip_is_byte_identical_across_processes(tmp_path: Path) -> None:
    a = _build_in_child(tmp_path, "a", "1", "022", "forward", 1_000_000_000)
    b = _build_in_child(tmp_path, "b", "4242", "077", "reverse", 1_700_000_000)
    assert a == b
    assert a == make_zip(FILES)
    assert a == make_zip(reversed(FILES))


def test_zip_layout_is_fixed() -> None:
    data = make_zip(FILES)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert zf.comment == b""
    assert [i.filename for i in infos] == sorted(p for p, _m, _d in FILES)
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.create_system == 3
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.extra == b""
        assert info.comment == b""
        assert not info.is_dir()
        assert info.external_attr >> 16 in (0o100644, 0o100755)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (0o644, 0o644),
        (0o600, 0o644),
        (0o400, 0o644),
        (0o755, 0o755),
        (0o700, 0o755),
        (0o777, 0o755),
        (0o100, 0o755),
        (0o100644, 0o644),
        (0o104755, 0o755),
    ],
)
def test_modes_normalised(given: int, stored: int) -> None:
    data = make_zip([("f", given, b"x")])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.getinfo("f").external_attr >> 16 == 0o100000 | stored
    assert read_zip(data) == [("f", stored, b"x")]
    assert data == make_zip([("f", stored, b"x")])


@pytest.fixture
def umask_077() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_077")
def test_extract_roundtrip(tmp_path: Path) -> None:
    data = make_zip(FILES)
    dest = tmp_path / "out"
    expected = files_tree_digest(FILES)
    assert extract_zip(data, dest, expected=expected) == expected
    on_disk = []
    for path, mode, content in FILES:
        p = dest / path
        assert p.read_bytes() == content
        assert stat.S_IMODE(p.stat().st_mode) == mode
        on_disk.append((path, p.stat().st_mode, p.read_bytes()))
    assert files_tree_digest(on_disk) == expected
    assert stat.S_IMODE((dest / "conf" / "nested").stat().st_mode) == 0o755
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_extract_into_existing_empty_dir(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    assert extract_zip(make_zip(FILES), dest) == files_tree_digest(FILES)


def test_extract_refuses_non_empty_dest(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale").write_text("old")
    with pytest.raises(BundleError):
        extract_zip(make_zip(FILES), dest)


def test_extract_with_wrong_expected_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    wrong = files_tree_digest([("other", 0o644, b"")])
    with pytest.raises(DigestMismatch):
        extract_zip(make_zip(FILES), dest, expected=wrong)
    assert list(tmp_path.iterdir()) == []


def _raw_zip(entries: list[tuple[str, int, bytes]], system: int = 3) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w") as zf:
            for name, unix_mode, data in entries:
                info = zipfile.ZipInfo(name, date_time=(2020, 5, 5, 5, 5, 5))
                info.create_system = system
                info.external_attr = unix_mode << 16
                zf.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    "entries",
    [
        [("../x", 0o100644, b"x")],
        [("a/../../x", 0o100644, b"x")],
        [("a/../b", 0o100644, b"x")],
        [("/etc/passwd", 0o100644, b"x")],
        [("./a", 0o100644, b"x")],
        [("a//b", 0o100644, b"x")],
        [("a\\..\\b", 0o100644, b"x")],
        [("link", 0o120777, b"/etc/passwd")],
        [("dev", 0o020644, b"")],
        [("dup", 0o100644, b"1"), ("dup", 0o100644, b"2")],
        [("dir/", 0o040755, b"")],
        [("a", 0o100644, b"1"), ("a/b", 0o100644, b"2")],
    ],
    ids=[
        "dotdot",
        "deep-dotdot",
        "inner-dotdot",
        "absolute",
        "dot",
        "empty-segment",
        "backslash",
        "symlink",
        "device",
        "duplicate",
        "directory-entry",
        "file-and-dir",
    ],
)
def test_extract_refuses_unsafe_entries(
    tmp_path: Path, entries: list[tuple[str, int, bytes]]
) -> None:
    dest = tmp_path / "out"
    with pytest.raises(BundleError) as info:
        extract_zip(_raw_zip(entries), dest)
    assert isinstance(info.value, StoreError)
    assert list(tmp_path.iterdir()) == []


def test_extract_refuses_garbage(tmp_path: Path) -> None:
    with pytest.raises(BundleError):
        extract_zip(b"PK\x03\x04 not really a zip", tmp_path / "out")
    data = bytearray(make_zip([("f", 0o644, b"hello world " * 100)]))
    data[40] ^= 0xFF  # inside the compressed stream
    with pytest.raises(BundleError):
        read_zip(bytes(data))


def test_extract_accepts_foreign_zip_without_unix_modes(tmp_path: Path) -> None:
    data = _raw_zip([("a.txt", 0, b"from elsewhere")], system=0)
    assert read_zip(data) == [("a.txt", 0o644, b"from elsewhere")]


def test_size_limit() -> None:
    data = make_zip([("big", 0o644, b"\0" * 10_000)])
    with pytest.raises(BundleError):
        read_zip(data, max_bytes=9_999)
    assert read_zip(data, max_bytes=10_000)[0][0] == "big"


@pytest.mark.parametrize("path", ["", "/a", "a/", "../a", "a/./b", "a/..", "a\\b", "a\x00b"])
def test_make_zip_refuses_bad_paths(path: str) -> None:
    with pytest.raises(BundleError):
        check_path(path)
    with pytest.raises(BundleError):
        make_zip([(path, 0o644, b"")])
    with pytest.raises(BundleError):
        tree_digest([(path, 0o644, digest_bytes(b""))])


def test_make_zip_refuses_duplicates_and_clashes() -> None:
    with pytest.raises(BundleError):
        make_zip([("a", 0o644, b"1"), ("a", 0o755, b"1")])
    with pytest.raises(BundleError):
        make_zip([("a", 0o644, b"1"), ("a/b", 0o644, b"1")])


def test_tree_digest_changes_with_content_path_and_exec_bit() -> None:
    base = files_tree_digest(FILES)
    content = [(p, m, d + b"!" if p == "empty" else d) for p, m, d in FILES]
    path = [("renamed" if p == "empty" else p, m, d) for p, m, d in FILES]
    exec_bit = [(p, 0o755 if p == "empty" else m, d) for p, m, d in FILES]
    digests = {
        base,
        files_tree_digest(content),
        files_tree_digest(path),
        files_tree_digest(exec_bit),
    }
    assert len(digests) == 4


def test_tree_digest_ignores_order_non_exec_mode_bits_and_mtime(tmp_path: Path) -> None:
    base = files_tree_digest(FILES)
    assert files_tree_digest(reversed(FILES)) == base
    assert files_tree_digest([(p, m & 0o700, d) for p, m, d in FILES]) == base

    def from_disk(root: Path, mtime: int) -> list[tuple[str, int, bytes]]:
        out = []
        for path, mode, data in FILES:
            p = root / path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            os.chmod(p, mode)
            os.utime(p, (mtime, mtime))
            out.append((path, p.stat().st_mode, p.read_bytes()))
        return out

    assert files_tree_digest(from_disk(tmp_path / "a", 1)) == base
    assert files_tree_digest(from_disk(tmp_path / "b", 2_000_000_000)) == base


def test_tree_digest_is_the_documented_json() -> None:
    from setpoint.store.digest import digest_json

    entries = [("b", 0o644, digest_bytes(b"b")), ("a/x", 0o755, digest_bytes(b"x"))]
    assert tree_digest(entries) == digest_json(
        {
            "kind": "Tree",
            "entries": [["a/x", 0o755, digest_bytes(b"x")], ["b", 0o644, digest_bytes(b"b")]],
        }
    )


def test_tree_digest_refuses_bad_digests() -> None:
    with pytest.raises(BundleError):
        tree_digest([("a", 0o644, "not-a-digest")])


def zip_bomb(size: int) -> bytes:
    """A zip of one file of ``size`` zero bytes, streamed so it never sits in memory:
    about a thousandth of ``size`` once deflated."""
    buf = io.BytesIO()
    chunk = bytes(1024 * 1024)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("zeros", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            for _ in range(size // len(chunk)):
                f.write(chunk)
    return buf.getvalue()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    size = MAX_BUNDLE_BYTES + 64 * 1024 * 1024
    bomb = zip_bomb(size)
    assert len(bomb) < 2 * 1024 * 1024
    before = peak_rss()
    dest = tmp_path / "out"
    with pytest.raises(BundleError) as info:
        extract_zip(bomb, dest)
    assert info.value.reason == f"declares {size} bytes uncompressed: more than {MAX_BUNDLE_BYTES}"
    with pytest.raises(BundleError):
        read_zip(bomb)
    assert list(tmp_path.iterdir()) == []
    assert peak_rss() - before < 64 * 1024 * 1024


def test_too_many_entries_are_refused_before_inflating(tmp_path: Path) -> None:
    data = make_zip([(f"f{i}", 0o644, b"") for i in range(11)])
    with pytest.raises(BundleError) as info:
        extract_zip(data, tmp_path / "out", max_files=10)
    assert info.value.reason == "11 entries: more than 10"
    assert extract_zip(data, tmp_path / "ok", max_files=11)


def _declare_size(data: bytes, name: bytes, size: int) -> bytes:
    """``data`` with the uncompressed size that ``name``'s headers declare replaced."""
    out = bytearray(data)
    for signature, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = out.index(signature)
        assert out[at + name_at : at + name_at + len(name)] == name
        out[at + offset : at + offset + 4] = size.to_bytes(4, "little")
    return bytes(out)


def test_an_entry_that_inflates_beyond_its_declared_size_is_refused(tmp_path: Path) -> None:
    honest = make_zip([("big", 0o644, b"\0" * 1_000_000)])
    lying = _declare_size(honest, b"big", 1_000)
    with pytest.raises(BundleError):
        extract_zip(lying, tmp_path / "out")
    with pytest.raises(BundleError):
        read_zip(lying)
    assert list(tmp_path.iterdir()) == []


def test_an_entry_that_inflates_to_less_than_its_declared_size_is_refused(tmp_path: Path) -> None:
    honest = make_zip([("small", 0o644, b"\0" * 1_000)])
    lying = _declare_size(honest, b"small", 5_000)
    with pytest.raises(BundleError):
        extract_zip(lying, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
