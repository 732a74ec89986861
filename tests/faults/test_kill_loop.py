"""``kill -9`` of the controller while it publishes to 300 servers, round after round.

Each round commits a change that gives every server a new manifest, starts
``setpoint reconcile`` on a local store and kills it with SIGKILL at a seeded
moment of its publish: after a random number of its pointers are written, or
after a random delay. After each kill the store is checked directly: no
pointer names anything missing, generations only grew, every pointer
verifies with the fleet's key. Then one pass that nobody kills, with the
simulated agents answering, converges the fleet, and ``setpoint fsck`` finds
nothing wrong but the temporary files of killed writes (which ``setpoint gc``
sweeps, after which fsck is clean).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.simulate import answer
from bench.synth import FleetShape, change_one_component, init_fleet
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey
from tests.faults.invariants import Invariants

pytestmark = pytest.mark.e2e

SHAPE = FleetShape(servers=300, groups=2, components=1, deployments=1, stacks=1)
ROUNDS = 6
SEED = 20261202


def reconcile(repo: Path, store: Path, key: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "setpoint.controller.cli", "reconcile",
        "--repo", str(repo), "--store", str(store), "--signing-key", str(key), *extra,
    ]  # fmt: skip


def kill_during_publish(cmd: list[str], rng: random.Random) -> str:
    """Start ``cmd`` and SIGKILL it at a seeded moment; what that moment was."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert proc.stdout is not None
    try:
        if rng.random() < 0.5:
            # After the n-th pointer: the publish is under way for sure.
            n = rng.randrange(SHAPE.servers)
            seen = 0
            for line in proc.stdout:
                if "pointer_published" in line:
                    seen += 1
                    if seen > n:
                        break
            moment = f"after pointer {seen} of {SHAPE.servers}"
        else:
            # At a random instant from start-up to the end of the publish.
            delay = rng.uniform(0.5, 6.0)
            time.sleep(delay)
            moment = f"{delay:.2f}s after start"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return moment if proc.returncode == -signal.SIGKILL else f"{moment} (already exited)"


def answer_all(store: LocalStore) -> None:
    for server in SHAPE.all_servers():
        answer(store, server)


def test_controller_killed_during_publish_leaves_the_store_whole(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    repo = init_fleet(tmp_path, SHAPE)
    key = SigningKey.generate("fleet")
    key_file = tmp_path / "fleet.key"
    key.save(key_file)
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    invariants = Invariants(store, key.public())
    cmd = reconcile(repo, store_dir, key_file)
    moments = []
    torn_publishes = 0  # rounds that left some servers on the new commit, some not
    for n in range(1, ROUNDS + 1):
        change_one_component(repo, component=0, revision=str(n))
        moments.append(kill_during_publish(cmd, rng))
        problems = invariants.violations()
        assert not problems, f"round {n}, killed {moments[-1]}:\n" + "\n".join(problems[:20])
        torn_publishes += len(invariants.commits) > 1
        if n % 2 == 0:
            answer_all(store)  # agents answer now and then, as they would
    killed = [m for m in moments if "already exited" not in m]
    assert len(killed) >= ROUNDS // 2, moments  # most kills struck a running controller
    assert torn_publishes >= 2, moments  # and some of them, half-way through its pointers

    # A pass nobody kills publishes the rest; the agents run it; the next converges.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    invariants.check()
    answer_all(store)
    final = subprocess.run(
        [*cmd, "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert final.returncode == 0, final.stdout + final.stderr
    outcome = json.loads(final.stdout)
    assert outcome["converged"] is True, outcome["failed"]
    assert outcome["published"] == []
    invariants.check()
    assert len(invariants.generations) == SHAPE.servers
    # A write killed half-way leaves its temporary file, which fsck reports and
    # gc sweeps; nothing else may be wrong.
    fsck = setpoint("fsck", "--store", str(store_dir), "--trusted-key", str(key.public()))
    problems = json.loads(fsck.stdout)["problems"]
    assert {p["kind"] for p in problems} <= {"temp-leftover"}, problems
    assert fsck.returncode == (1 if problems else 0), fsck.stdout + fsck.stderr
    gc = setpoint("gc", "--store", str(store_dir), "--grace", "0")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    fsck = setpoint("fsck", "--store", str(store_dir), "--trusted-key", str(key.public()))
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def setpoint(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "setpoint.controller.cli", *args, "--json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
