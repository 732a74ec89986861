"""Materializing a derived config's attached files under the state dir.

A config's ``files`` map names to ``{"type": "file", "digest", "executable"}``
(a blob) or ``{"type": "directory", "digest": <tree digest>}`` (a zip blob,
found through the manifest's ``bundles``). They land in
``<state-dir>/files/<config hex>/<name>``; that directory is built under a
temporary name and renamed into place, so it only ever exists complete. Every
blob is verified by the store on read, and every directory's recomputed tree
digest must equal the one the config names. Before a run, files in place are
checked against their digests again (``files_drift``, which drift checks use
too) and unpacked anew when one was changed on the server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.contract import is_safe_name
from setpoint.agentshim.errors import AgentError, FilesError
from setpoint.agentshim.state import Layout
from setpoint.store import Store, StoreError, digest_bytes
from setpoint.store.atomic_files import fsync_dir
from setpoint.store.bundles import extract_zip, tree_digest


def config_files(derived: dict[str, Any]) -> dict[str, dict[str, Any]]:
    files = derived.get("files") or {}
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise FilesError(str(derived.get("name")), "'files' is not a map of file specs")
    return files


def materialize(
    store: Store,
    layout: Layout,
    digest: str,
    derived: dict[str, Any],
    bundles: dict[str, str],
    verify: bool = False,
) -> Path | None:
    """The directory holding the config's files (created if needed), or None if it has none.

    With ``verify``, files already in place are checked against their digests
    first, and unpacked again from the store when one differs (changed on the
    server since): a run applies what the digest names, never a changed copy.

    Raises ``FilesError`` (bad spec, missing bundle) or ``StoreError`` (a blob
    that cannot be read or does not verify).
    """
    files = config_files(derived)
    if not files:
        return None
    dest = layout.files_dir(digest)
    if dest.is_dir():
        if not verify or not files_drift(dest, derived):
            return dest
        shutil.rmtree(dest)
    layout.files.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=layout.files))
    try:
        for name, spec in sorted(files.items()):
            _place(store, digest, tmp, name, spec, bundles)
        os.chmod(tmp, 0o755)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):
        fsync_dir(layout.files)
    return dest


def files_or_reason(
    ctx: AgentContext, digest: str, derived: dict[str, Any], verify: bool = False
) -> tuple[Path | None, str | None]:
    """``materialize`` for the manifest the agent holds: the config's files
    directory (None: it has none), or why they cannot be put in place."""
    bundles = ctx.state.manifest_doc.bundles if ctx.state.manifest_doc else {}
    try:
        return materialize(ctx.store, ctx.layout, digest, derived, bundles, verify), None
    except (StoreError, AgentError) as exc:
        return None, f"cannot materialize the config's files: {exc}"


def _place(
    store: Store, config: str, tmp: Path, name: str, spec: dict[str, Any], bundles: dict[str, str]
) -> None:
    if not is_safe_name(name):
        raise FilesError(config, f"file name {name!r} is not a safe file name")
    kind = spec.get("type")
    digest = spec.get("digest")
    if not isinstance(digest, str):
        raise FilesError(config, f"file {name!r} has no digest")
    if kind == "file":
        data = store.get_blob(digest)
        mode = 0o755 if spec.get("executable") else 0o644
        path = tmp / name
        path.write_bytes(data)
        path.chmod(mode)
    elif kind == "directory":
        zip_digest = bundles.get(digest)
        if zip_digest is None:
            raise FilesError(config, f"directory {name!r}: the manifest has no bundle for {digest}")
        data = store.get_blob(zip_digest)
        try:
            extract_zip(data, tmp / name, expected=digest)
        except StoreError as exc:
            raise FilesError(config, f"directory {name!r}: {exc}") from exc
    else:
        raise FilesError(config, f"file {name!r} has unknown type {kind!r}")


def files_drift(where: Path, derived: dict[str, Any]) -> str:
    """Which of the config's attached files and directories differ from their
    digests where they were unpacked ("" when none does)."""
    lines = []
    for name, spec in sorted(config_files(derived).items()):
        path = where / name
        if spec.get("type") == "directory":
            got = _tree_of(path)
        else:
            try:
                got = digest_bytes(path.read_bytes())
            except OSError:
                got = None
        if got != spec.get("digest"):
            kind = "directory" if spec.get("type") == "directory" else "file"
            lines.append(f"attached {kind} {name!r} differs from {spec.get('digest')}")
    return "\n".join(lines)


def _tree_of(root: Path) -> str | None:
    """The tree digest of a directory as it is now, None when it cannot be one
    (missing, or holding a link or something other than files)."""
    if not root.is_dir() or root.is_symlink():
        return None
    entries = []
    try:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                return None
            if path.is_dir():
                continue
            mode = path.stat().st_mode
            entries.append(
                (path.relative_to(root).as_posix(), mode, digest_bytes(path.read_bytes()))
            )
        return tree_digest(entries)
    except (OSError, StoreError):
        return None
