"""A bundle is extracted within bounds: a zip bomb is refused before it is inflated,
and the agent's memory stays small."""

from __future__ import annotations

import io
import resource
import zipfile
from collections.abc import Callable
from pathlib import Path

import blake3
from agenttest import Publisher, script

from setpoint.agentshim.agent import Agent
from setpoint.store.bundles import MAX_BUNDLE_BYTES, tree_digest
from setpoint.store.memory import MemoryStore

CHUNK = bytes(1024 * 1024)


def zip_bomb(size: int) -> tuple[bytes, str]:
    """A zip of one file of ``size`` zero bytes (about a thousandth of that once
    deflated), and the tree digest it claims; never all in memory."""
    buf = io.BytesIO()
    hasher = blake3.blake3()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("zeros", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            for _ in range(size // len(CHUNK)):
                f.write(CHUNK)
                hasher.update(CHUNK)
    tree = tree_digest([("zeros", 0o644, "blake3:" + hasher.hexdigest())])
    return buf.getvalue(), tree


def test_a_zip_bomb_bundle_is_refused_before_it_is_inflated(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    size = MAX_BUNDLE_BYTES + 64 * 1024 * 1024
    bomb, tree = zip_bomb(size)
    assert len(bomb) < 2 * 1024 * 1024
    seen = tmp_path / "seen"
    derived = script(f"touch {seen}", files={"site": {"type": "directory", "digest": tree}})
    publisher.publish({"app/web": derived}, bundles={tree: store.put_blob(bomb)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    agent = make_agent()
    result = agent.run_once()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert result.ran == []
    assert result.error is not None
    assert f"declares {size} bytes uncompressed: more than {MAX_BUNDLE_BYTES}" in result.error
    assert not seen.exists()
    assert grown < 64 * 1024 * 1024
    leftovers = list(agent.layout.files.iterdir()) if agent.layout.files.exists() else []
    assert leftovers == []
