"""Baselines measured in the same run: Heat-style publication and pull-from-git agents.

Heat-style (os-collect-config's request collector): one metadata document per
server holding every one of its configs inline, rewritten whole when any of
them changes, downloaded whole on every poll. Its sizes are computed from the
very derived configs setpoint renders, so the two are compared on the same
content.

Pull-from-git (ansible-pull style): each server keeps a clone of the
definitions repository and runs ``git fetch`` on every poll. Measured with real
git against a local bare repository: wall time of an idle fetch and the bytes
``git upload-pack`` sends, and the same for a fetch after a one-file commit.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from setpoint.controller.rollout.desired import DesiredState


def heat_documents(desired: DesiredState) -> dict[str, int]:
    """Size of each server's Heat-style metadata document (every config inline)."""
    sizes: dict[str, int] = {}
    by_shape: dict[tuple[str, ...], int] = {}
    for server, manifest in desired.manifests.items():
        key = tuple(e.config for e in manifest.deployments)
        if key not in by_shape:
            doc = {
                "deployments": [
                    {**desired.configs[e.config].body, "id": e.config, "name": e.name}
                    for e in manifest.deployments
                    if e.config in desired.configs
                ]
            }
            by_shape[key] = len(json.dumps(doc, separators=(",", ":")).encode("utf-8"))
        sizes[server] = by_shape[key]
    return sizes


def heat_change(before: DesiredState, after: DesiredState) -> dict[str, int]:
    """Bytes Heat writes for a commit: the whole document of every server that changed."""
    old, new = heat_documents(before), heat_documents(after)
    changed = [
        s
        for s, m in after.manifests.items()
        if before.manifests.get(s) is None or before.manifests[s].deployments != m.deployments
    ]
    return {
        "servers_rewritten": len(changed),
        "bytes_written": sum(new[s] for s in changed),
        "idle_poll_bytes_read": int(statistics.median(new.values())) if new else 0,
        "document_bytes_max": max(new.values()) if new else 0,
        "documents_bytes_total": sum(old.values()),
    }


_COUNTING_UPLOAD_PACK = """#!/bin/sh
# git upload-pack, with the bytes it sends counted into $SETPOINT_BENCH_COUNT
git upload-pack "$@" | tee -a "$SETPOINT_BENCH_COUNT.raw"
"""


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def git_pull(repo: Path, runs: int = 9) -> dict[str, Any]:
    """An agent's ``git fetch`` of the definitions repo: idle, and after a one-file commit."""
    if shutil.which("git") is None:
        return {"skipped": "git is not installed"}
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-git-") as tmp:
        root = Path(tmp)
        bare, clone, work = root / "defs.git", root / "agent", root / "work"
        _git("clone", "-q", "--bare", str(repo), str(bare))
        _git("clone", "-q", str(bare), str(clone))
        _git("clone", "-q", str(bare), str(work))
        wrapper = root / "upload-pack"
        wrapper.write_text(_COUNTING_UPLOAD_PACK)
        wrapper.chmod(0o755)
        count = root / "count"
        env = {**os.environ, "SETPOINT_BENCH_COUNT": str(count)}

        def fetch() -> tuple[float, int]:
            raw = Path(str(count) + ".raw")
            raw.unlink(missing_ok=True)
            start = time.perf_counter()
            _git("fetch", "-q", "--upload-pack", str(wrapper), "origin", cwd=clone, env=env)
            seconds = time.perf_counter() - start
            return seconds, raw.stat().st_size if raw.exists() else 0

        idle = [fetch() for _ in range(runs)]
        (work / "components" / "c0" / "notes.txt").write_text("changed notes\n")
        _git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "x", cwd=work)
        _git("push", "-q", "origin", "HEAD", cwd=work)
        changed = fetch()
        return {
            "idle_fetch_ms": statistics.median(s for s, _ in idle) * 1000,
            "idle_fetch_bytes": statistics.median(b for _, b in idle),
            "changed_fetch_ms": changed[0] * 1000,
            "changed_fetch_bytes": changed[1],
            "repo_bytes": sum(f.stat().st_size for f in bare.rglob("*") if f.is_file()),
        }
