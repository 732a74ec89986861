"""``python -m bench.publish_bytes``: are the bytes published the same, object by object?

A speed-up of the publish path must not change what lands in the store. This
runs one fixed scenario on a synthetic fleet, fully determined (commit ids
from fixed commit times, a signing key from a fixed seed, a clock that moves
by a minute a pass; Ed25519 signatures are deterministic): converge, change
a component every server runs, let the agents answer, change it back, let
them answer again. Then it takes the BLAKE3 digest of every object in the
store: pointers, reports, blobs, the ledger, the commit records.

- ``--lease``: the controller holds the store's lease (``store.lease``), so
  the ledger carries the epoch and every write is fenced, as for replicas.
  The lease object itself is left out of the comparison: each renewal
  writes a new random token into it.
- With no option, the scenario runs twice and the two stores are compared
  (that the scenario is deterministic, so that a comparison means something).
- ``--save FILE`` writes the digests of one run; ``--against FILE``, run at
  another commit, compares with them: the check that an optimisation left
  every published byte as it was (``git checkout`` the commit before it,
  ``--save``; back to the new one, ``--against``).

It prints how many objects differ, names the first few, and exits 1 if any do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import blake3

from bench import simulate
from bench.synth import FIXED_TIME, FleetShape, change_one_component, init_fleet
from setpoint.controller import logs
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.wording import counted
from setpoint.store.lease import LEASE, Lease
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey

# A fixed seed: the same key signs in every run, so signatures compare too.
SEED = bytes(range(32))
SHOWN = 10  # differing objects named in the output


def shape_for(servers: int) -> FleetShape:
    """As ``bench.concurrency``: every server runs the component that changes."""
    return FleetShape(
        servers=servers, groups=min(20, servers), components=5, deployments=5, stacks=2
    )


def publish(root: Path, servers: int, lease: bool) -> dict[str, str]:
    """Run the scenario into ``root/store``; the digest of every object, by key."""
    shape = shape_for(servers)
    repo_path = init_fleet(root, shape)
    store = LocalStore(root / "store")
    agents = LocalStore(root / "store")
    now = [float(FIXED_TIME)]
    with GitRepo.open(repo_path) as repo:
        policy = PointerPolicy(SigningKey("bench", SEED))
        # A ttl no pass outlasts: the clock moves by a minute a pass.
        held = Lease(store, "bench", ttl=86_400, clock=lambda: now[0]) if lease else None
        if held is not None and not held.try_acquire():
            raise RuntimeError("the lease of a fresh store could not be taken")
        reconciler = Reconciler(repo, store, clock=lambda: now[0], policy=policy, lease=held)

        def converge() -> None:
            for _ in range(10):
                now[0] += 60
                if reconciler.run_pass().converged:
                    return
                agents.pool.map(lambda s: simulate.answer(agents, s), shape.all_servers())
            raise RuntimeError(f"{servers} servers did not converge in 10 passes")

        converge()
        change_one_component(repo_path, revision="2")
        converge()
        change_one_component(repo_path, revision="1")  # back: the old digests again
        converge()
    out = digests(root / "store")
    if lease:
        out.pop(f"controller/{LEASE}")
    return out


def digests(store_root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(store_root):
        for name in files:
            path = Path(dirpath, name)
            out[path.relative_to(store_root).as_posix()] = blake3.blake3(
                path.read_bytes()
            ).hexdigest()
    return out


def compare(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The keys whose bytes differ, or that only one side has, sorted."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def run_once(servers: int, lease: bool) -> dict[str, str]:
    scratch = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="setpoint-publish-bytes-", dir=scratch) as tmp:
        return publish(Path(tmp), servers, lease)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.publish_bytes", description=__doc__.split("\n")[0]
    )
    p.add_argument("--servers", type=int, default=10_000, help="fleet size (default: 10000)")
    p.add_argument("--lease", action="store_true", help="the controller holds the lease")
    p.add_argument("--save", metavar="FILE", help="write this run's digests here")
    p.add_argument("--against", metavar="FILE", help="compare with digests saved by --save")
    args = p.parse_args(argv)
    logs.configure("warning")

    def say(text: str) -> None:
        print(f"... {text}", file=sys.stderr, flush=True)

    say(f"{args.servers} servers: publishing")
    now = run_once(args.servers, args.lease)
    if args.save:
        run = {"servers": args.servers, "lease": args.lease, "objects": now}
        Path(args.save).write_text(json.dumps(run, indent=0, sort_keys=True) + "\n")
        say(f"{counted(len(now), 'object')} saved to {args.save}")
    if args.against:
        saved = json.loads(Path(args.against).read_text())
        if saved["servers"] != args.servers:
            raise SystemExit(f"{args.against} holds a run at {saved['servers']} servers")
        if saved.get("lease", False) != args.lease:
            held = "with" if saved.get("lease") else "without"
            raise SystemExit(f"{args.against} holds a run {held} the lease")
        before, label = saved["objects"], args.against
    elif args.save:
        return 0
    else:
        say(f"{args.servers} servers: publishing again")
        before, label = run_once(args.servers, args.lease), "a second run"
    differ = compare(before, now)
    total = len(before.keys() | now.keys())
    print(f"{len(differ)} of {counted(total, 'object')} differ from {label}")
    for key in differ[:SHOWN]:
        side = "only before" if key not in now else "only now" if key not in before else "bytes"
        print(f"  {key}: {side}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
