"""A throw-away local OpenStack Swift for the benchmarks, started by the harness.

``python -m bench --swift`` starts one with ``tools/swift-saio.sh`` (as the
tests do, see ``tests/swift_fixtures.py``), points ``ST_AUTH``/``ST_USER``/
``ST_KEY`` at it for the controller and the agent processes, and stops it at
the end. ``SETPOINT_BENCH_SWIFT`` naming a store URL uses an already running
Swift instead.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "swift-saio.sh"


def missing() -> str | None:
    """Why a local Swift cannot be started here, or None."""
    if not shutil.which("memcached", path="/usr/bin:/usr/local/bin"):
        return "memcached is not installed (run .ci/install-swift.sh)"
    probe = subprocess.run(
        ["/usr/bin/python3", "-s", "-c", "import swift"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return "Debian's swift is not installed (run .ci/install-swift.sh)"
    return None


def _free_base_port() -> int:
    """A proxy port P with P+10..P+13 (object, container, account, memcached) free."""
    for _ in range(200):
        base = random.randrange(20000, 40000, 20)
        ports = (base, base + 10, base + 11, base + 12, base + 13)
        free = True
        for port in ports:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return base
    raise RuntimeError("no free ports for Swift")


@contextmanager
def local_swift() -> Iterator[Callable[[], str]]:
    """Start a SAIO, yield a maker of fresh ``swift://`` store URLs, stop it afterwards."""
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-swift-") as tmp:
        directory = Path(tmp) / "saio"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWIFT_SAIO_")}
        out = subprocess.run(
            ["bash", str(SCRIPT), "start", str(directory), str(_free_base_port())],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            check=False,
        )
        try:
            if out.returncode != 0:
                raise RuntimeError(f"swift-saio.sh start failed:\n{out.stderr[-3000:]}")
            values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
            saved = {k: os.environ.get(k) for k in ("ST_AUTH", "ST_USER", "ST_KEY")}
            os.environ["ST_AUTH"] = values["SWIFT_AUTH_URL"]
            os.environ["ST_USER"] = values["SWIFT_USER"]
            os.environ["ST_KEY"] = values["SWIFT_KEY"]
            try:
                from setpoint.store.url import open_store

                # Agents read through TempURLs, which need the account's key.
                keyed: Any = open_store(f"swift://bench-{uuid.uuid4().hex[:10]}")
                keyed.set_temp_url_key(1, secrets.token_urlsafe(32))
                yield lambda: f"swift://bench-{uuid.uuid4().hex[:10]}"
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        finally:
            subprocess.run(
                ["bash", str(SCRIPT), "stop", str(directory)],
                env=env,
                capture_output=True,
                check=False,
                timeout=60,
            )
