"""``setpoint demo``: the whole story, checked, on a throwaway repository and store.

1. First deploy: the backend reports ``host_and_port``; the front ends on two
   servers receive it through ``get_attr``.
2. A commit bumps the backend's version: only the backend and the front ends
   whose inputs changed rerun (UPDATE); everything else does nothing.
3. ``git revert`` of that commit: the old digests come back, no new blob is
   stored, and the agents run UPDATE with the old configs.
4. A commit removes a deployment: its DELETE config runs.

Agents run as separate processes against a local store directory; each step
reconciles with ``--wait`` semantics and checks what the agents reported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from setpoint.controller.cli.common import add_command
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import CONVERGED, Reconciler, wait_for_convergence
from setpoint.controller.converge.status import fleet_status, format_table
from setpoint.controller.definitions.repository import (
    GitRepo,
    commit_all,
    init_repo_from_dir,
    revert,
)
from setpoint.controller.fleet.enroll import bootstrap_for
from setpoint.controller.fleet.rotate import KeyedStore
from setpoint.store.base import Store
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey
from setpoint.store.url import open_store

SERVERS = ("db-1", "web-1", "web-2")


def _example_repository() -> Path:
    """``repos-example/``: in a wheel, the data package ``setpoint.examples``; in a
    checkout, the folder itself, which the editable install maps to that name.

    Found through the package's search locations rather than importlib.resources:
    it has no ``__init__.py``, and Python 3.11 cannot read resources of such a
    namespace package when an editable install's path hook is among them.
    """
    spec = importlib.util.find_spec("setpoint.examples")
    search = (spec.submodule_search_locations if spec else None) or []
    locations = [Path(p) for p in search]
    for location in locations:
        if (location / "inventory.yaml").is_file():
            return location
    # Nothing installed there: run_demo names this place in its error.
    return locations[0] if locations else Path("setpoint", "examples")


EXAMPLE = _example_repository()


def add_parsers(sub: Any) -> None:
    p = add_command(
        sub,
        "demo",
        cmd_demo,
        help="run the whole story on a throwaway repository",
        description="Copy repos-example/ into a new git repository, start three agents as "
        "processes on a local store, and walk through deploy, update, revert and delete, "
        "checking each step. Exit 0 only if every step converged as described.",
    )
    p.add_argument("--workdir", help="keep everything in this directory (default: a temp dir)")
    p.add_argument(
        "--store",
        help="run against this (empty) store instead of a local directory, e.g. "
        "swift://demo or s3://demo; agents reach it only through enrolled URLs",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per step (120)")


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(workdir=args.workdir, timeout=args.timeout, store_url=args.store)


class DemoFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"step {step!r} failed: {reason}")
        self.step = step
        self.reason = reason


# (server, deployment) -> (config digest, action, started_at) as last reported
Runs = dict[tuple[str, str], tuple[str, str, str | None]]


def _runs(store: Store) -> Runs:
    out: Runs = {}
    for server in SERVERS:
        report = store.read_report(server)
        for name, d in (report.deployments if report else {}).items():
            out[(server, name)] = (d.config, d.action, d.started_at)
    return out


def _rerun(before: Runs, after: Runs) -> dict[tuple[str, str], str]:
    """(server, deployment) -> action, for every run between two snapshots."""
    return {
        key: run[1]
        for key, run in after.items()
        if before.get(key) is None or before[key][2] != run[2]
    }


@dataclass
class _Demo:
    root: Path
    timeout: float
    say: Callable[[str], None]
    store: Store

    def __post_init__(self) -> None:
        self.repo_dir = self.root / "repo"
        self.agents: list[subprocess.Popen[bytes]] = []
        # Pointers are signed; each agent trusts this key through its bootstrap.
        self.policy = PointerPolicy(signing_key=SigningKey.generate("demo"))

    def start_agents(self) -> None:
        for server in SERVERS:
            state = self.root / "agents" / server
            state.mkdir(parents=True, exist_ok=True)
            boot = bootstrap_for(self.store, server, self.policy.trust() or {})
            boot_file = self.root / "agents" / f"{server}.bootstrap.json"
            boot_file.write_text(json.dumps(boot.to_dict(), indent=2))
            log = (self.root / "agents" / f"{server}.log").open("ab")
            cmd = [
                sys.executable, "-m", "setpoint.agentshim", "--bootstrap", str(boot_file),
                "--state-dir", str(state), "--interval", "0.2", "--retry-backoff", "0.5",
            ]  # fmt: skip
            self.agents.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def stop_agents(self) -> None:
        for proc in self.agents:
            proc.terminate()
        for proc in self.agents:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def converge(self, step: str) -> None:
        for proc in self.agents:
            if proc.poll() is not None:
                raise DemoFailed(step, f"an agent exited with status {proc.returncode}")
        with GitRepo.open(self.repo_dir) as repo:
            code, outcome = wait_for_convergence(
                Reconciler(repo, self.store, policy=self.policy),
                self.timeout,
                0.2,
                lambda o: self.say(f"  reconcile: {o.summary()}"),
            )
        if code != CONVERGED:
            detail = "; ".join(outcome.failed or [str(w) for w in outcome.waiting]) or "pending"
            what = "failed" if outcome.failed else "timed out"
            raise DemoFailed(step, f"did not converge ({what}): {detail}")
        self.say(format_table(fleet_status(self.store)))

    def expect_runs(self, step: str, before: Runs, expected: dict[tuple[str, str], str]) -> Runs:
        after = _runs(self.store)
        got = _rerun(before, after)
        if got != expected:
            raise DemoFailed(
                step, f"expected runs {sorted(expected.items())}, got {sorted(got.items())}"
            )
        for (server, name), action in sorted(got.items()):
            self.say(f"  ok: {action:<6} {name} on {server}")
        return after

    def run(self) -> None:
        step = "1. first deploy"
        self.say(f"\n== {step}: backend on db-1, front end on web-1 and web-2 (data flow)")
        init_repo_from_dir(EXAMPLE, self.repo_dir, "Deploy the example stack")
        self.start_agents()
        self.converge(step)
        runs = self.expect_runs(
            step,
            {},
            {(s, n): "CREATE" for s in SERVERS for n in ("web/motd",)}
            | {("db-1", "web/backend"): "CREATE"}
            | {(s, n): "CREATE" for s in SERVERS[1:] for n in ("web/frontend", "web/metrics")},
        )
        settings = (self.root / "agents/web-1/work").rglob("settings.txt")
        found = [p.read_text() for p in settings]
        if not any("backend=db-1:5432" in text for text in found):
            raise DemoFailed(step, "web-1 did not receive the backend's host_and_port")
        self.say("  ok: web-1 received backend=db-1:5432 through get_attr")

        step = "2. update"
        self.say(f"\n== {step}: bump the backend to 1.1.0")
        stack = self.repo_dir / "stacks" / "web.yaml"
        stack.write_text(stack.read_text().replace('default: "1.0.0"', 'default: "1.1.0"'))
        bump = commit_all(self.repo_dir, "Bump the backend to 1.1.0")
        self.converge(step)
        runs = self.expect_runs(
            step,
            runs,
            {("db-1", "web/backend"): "UPDATE"}
            | {(s, "web/frontend"): "UPDATE" for s in SERVERS[1:]},
        )

        step = "3. revert"
        self.say(f"\n== {step}: git revert {bump[:12]}")
        blobs_before = set(self.store.list_blobs())
        revert(self.repo_dir, bump)
        self.converge(step)
        runs = self.expect_runs(
            step,
            runs,
            {("db-1", "web/backend"): "UPDATE"}
            | {(s, "web/frontend"): "UPDATE" for s in SERVERS[1:]},
        )
        new_blobs = set(self.store.list_blobs()) - blobs_before
        if new_blobs:
            raise DemoFailed(step, f"the revert stored {len(new_blobs)} new blobs, expected 0")
        self.say("  ok: the revert stored 0 new blobs: the old digests came back")

        step = "4. delete"
        self.say(f"\n== {step}: remove the metrics deployment")
        text = stack.read_text()
        stack.write_text(text[: text.index("  metrics:")])
        commit_all(self.repo_dir, "Remove the metrics collector")
        self.converge(step)
        self.expect_runs(step, runs, {})
        for server in SERVERS[1:]:
            report = self.store.read_report(server)
            if report is None or "web/metrics" in report.deployments:
                raise DemoFailed(step, f"web/metrics is still reported on {server}")
            if list((self.root / "agents" / server / "work").rglob("metrics.conf")):
                raise DemoFailed(step, f"the DELETE config did not run on {server}")
            self.say(f"  ok: DELETE web/metrics on {server} (metrics.conf removed, forgotten)")


def _ensure_temp_url_key(store: Store, say: Callable[[str], None]) -> None:
    """Agents on Swift read through TempURLs: the account needs a key to sign them."""
    keyed = cast(KeyedStore, store)
    if keyed.temp_url_keys() == (None, None):
        keyed.set_temp_url_key(1, secrets.token_urlsafe(32))
        say("setpoint demo: the Swift account had no TempURL key; set one")


def run_demo(
    workdir: str | None = None,
    timeout: float = 120.0,
    say: Callable[[str], None] = print,
    store_url: str | None = None,
) -> int:
    """Run the story; on ``store_url`` (Swift, S3) agents reach it through enrolled URLs."""
    if not (EXAMPLE / "inventory.yaml").is_file():
        say(f"setpoint demo: the example repository is missing at {EXAMPLE}")
        return 4
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="setpoint-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    store = open_store(store_url) if store_url else LocalStore(root / "store")
    if store.list_servers():
        say(f"setpoint demo: {store.url} already holds servers; give it an empty store")
        return 4
    say(f"setpoint demo: repository {root / 'repo'}, store {store.url}")
    if store.capability_kind == "swift":
        _ensure_temp_url_key(store, say)
    demo = _Demo(root, timeout, say, store)
    started = time.monotonic()
    try:
        demo.run()
    except DemoFailed as exc:
        say(f"\nsetpoint demo: {exc}")
        say(f"  agent logs: {root / 'agents'}")
        return 1
    finally:
        demo.stop_agents()
    say(f"\nsetpoint demo: all 4 steps converged as described in {time.monotonic() - started:.1f}s")
    if not workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0
