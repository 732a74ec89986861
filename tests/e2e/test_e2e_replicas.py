"""Two controller replicas on one store (local, real Swift, S3 on moto), agents as
processes: the leader is killed with SIGKILL in the middle of a rolling update,
the standby takes over within the lease's ttl, and the rollout completes one
server at a time with no server running the new config twice."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.definitions.repository import commit_all
from setpoint.controller.fleet.enroll import bootstrap_for
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.store.base import Store
from setpoint.store.documents import Manifest
from setpoint.store.lease import lease_status
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey
from setpoint.store.url import open_store
from tests.e2e.cli import setpoint

pytestmark = pytest.mark.e2e

SERVERS = ("db-1", "web-1", "web-2")
TTL = 3.0


def wait_until(what: str, condition: Callable[[], object], seconds: float) -> float:
    """Poll ``condition`` until true; how long it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def took_lease_at(log: Path, after_epoch: int) -> float:
    """When (epoch seconds) the replica logging to ``log`` acquired an epoch
    above ``after_epoch``, from its ``lease_acquired`` line."""
    for line in log.read_text().splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == "lease_acquired":
            epoch = int(next(f for f in fields if f.startswith("epoch="))[len("epoch=") :])
            if epoch > after_epoch:
                return datetime.fromisoformat(fields[0]).timestamp()
    raise AssertionError(f"no lease_acquired above epoch {after_epoch} in {log}")


def runs(log_dir: Path, server: str) -> list[tuple[float, float | None]]:
    """(start, end) of each run the hook logged on ``server``."""
    path = log_dir / server
    if not path.exists():
        return []
    out: list[tuple[float, float | None]] = []
    for line in path.read_text().splitlines():
        kind, stamp = line.split()
        if kind == "start":
            out.append((float(stamp), None))
        else:
            out[-1] = (out[-1][0], float(stamp))
    return out


def test_standby_takes_over_a_rolling_update_when_the_leader_is_killed(
    example_repo: Path, tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    store_dir = tmp_path / "store"
    start_agents(store_dir, SERVERS)
    failover_mid_rollout(example_repo, tmp_path, str(store_dir), LocalStore(store_dir), [])


def test_on_swift_standby_takes_over_through_numbered_leases(
    example_repo: Path, tmp_path: Path, swift_env: Any
) -> None:
    """The same on a real Swift: the lease is numbered create-only objects, the
    agents hold only TempURLs, pointers are signed."""
    store = open_store(f"swift://replicas-{uuid.uuid4().hex[:10]}")
    if store.temp_url_keys() == (None, None):  # type: ignore[attr-defined]
        store.set_temp_url_key(1, "replicas-secret")  # type: ignore[attr-defined]
    failover_with_url_agents(example_repo, tmp_path, store)
    assert store.list_controller_docs("lease-n"), "Swift holds numbered leases"
    assert store.read_controller_doc("lease") is None


def test_on_s3_standby_takes_over_through_conditional_writes(
    example_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on S3 (moto as a real HTTP server): the lease is one object
    replaced with If-Match, the agents hold only presigned URLs."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    try:
        store = open_store(
            f"s3://replicas-{uuid.uuid4().hex[:10]}/fleet?endpoint=http://{host}:{port}"
        )
        failover_with_url_agents(example_repo, tmp_path, store)
        assert store.read_controller_doc("lease") is not None
    finally:
        server.stop()


def failover_with_url_agents(example_repo: Path, tmp_path: Path, store: Store) -> None:
    """``failover_mid_rollout`` with agents enrolled on ``store``'s capability URLs
    and pointers signed."""
    key = SigningKey.generate("ctl")
    key_file = tmp_path / "ctl.key"
    key.save(key_file)
    agents = []
    try:
        for server in SERVERS:
            state = tmp_path / "agents" / server
            state.mkdir(parents=True)
            boot = bootstrap_for(store, server, {key.name: str(key.public())})
            boot_file = tmp_path / "agents" / f"{server}.bootstrap.json"
            boot_file.write_text(json.dumps(boot.to_dict()))
            log = (tmp_path / "agents" / f"{server}.log").open("ab")
            cmd = [
                sys.executable, "-m", "setpoint.agentshim", "--bootstrap", str(boot_file),
                "--state-dir", str(state), "--interval", "0.2", "--retry-backoff", "0.5",
            ]  # fmt: skip
            agents.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        signing = ["--signing-key", str(key_file)]
        failover_mid_rollout(example_repo, tmp_path, store.url, store, signing)
    finally:
        for proc in agents:
            proc.terminate()
        for proc in agents:
            proc.wait(timeout=20)


def failover_mid_rollout(
    example_repo: Path, tmp_path: Path, url: str, store: Store, signing: list[str]
) -> None:
    """Deploy, start two replicas, roll out one server at a time, SIGKILL the
    leader while the first server runs the change, and check the outcome."""
    wait = ("--wait", "--timeout", "90", "--interval", "0.1")
    first = setpoint("reconcile", "--repo", str(example_repo), "--store", url, *wait, *signing)
    assert first.returncode == 0, first.stdout + first.stderr

    def replica(name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"replica-{name}.log").open("ab")
        cmd = [
            sys.executable, "-m", "setpoint.controller.cli", "--log-level", "info",
            "watch", "--repo", str(example_repo), "--branch", "main",
            "--store", url, "--replica", name,
            "--lease-ttl", str(TTL), "--interval", "0.1", *signing,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return proc

    def leader() -> str | None:
        status = lease_status(store, time.time())
        return status.leader if status else None

    def logs() -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("replica-*.log"))
        )

    # A rolling update, one server at a time, whose hook logs when it runs.
    log_dir = tmp_path / "runs"
    log_dir.mkdir()
    stack = example_repo / "stacks/web.yaml"
    stack.write_text(
        stack.read_text().replace(
            "      message: Managed by setpoint\n",
            "      message: Managed by setpoint, rolled\n    update_policy: {max_batch_size: 1}\n",
        )
    )
    motd = example_repo / "components/motd/component.yaml"
    motd.write_text(
        motd.read_text().replace(
            "      #!/bin/sh\n      printf",
            f'      #!/bin/sh\n      echo "start $(date +%s.%N)" >> {log_dir}/"$deploy_server_id"\n'
            "      sleep 1.5\n"
            f'      echo "end $(date +%s.%N)" >> {log_dir}/"$deploy_server_id"\n'
            "      printf",
            1,
        )
    )

    def roll_out() -> None:
        commit_all(example_repo, "Roll out a new motd one server at a time")

    procs = []
    try:
        # Deadlines below are hang guards: a replica's start and first pass on a
        # loaded machine (S3 on moto in this process) can take tens of seconds.
        procs.append(replica("ctl-a"))
        wait_until("ctl-a to lead", lambda: leader() == "ctl-a", 90)
        procs.append(replica("ctl-b"))
        status_out = ""

        def standby_listed() -> bool:
            nonlocal status_out
            status_out = setpoint("status", "--store", url).stdout
            return "standbys: ctl-b" in status_out

        wait_until("ctl-b to stand by", standby_listed, 90)
        assert "controllers: ctl-a leading" in status_out
        roll_out()  # the replicas see the new head
        # Kill the leader once the rollout is under way: the first server is running it.
        alive = lease_status(store, time.time())  # read before: the kill must be prompt
        wait_until("the first batch", lambda: any(runs(log_dir, s) for s in SERVERS), 90)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        started = [s for s in SERVERS if runs(log_dir, s)]
        assert len(started) == 1, f"killed too late to be mid-rollout: {started} had run"
        # ctl-a's last renewal, as the lease records it (dead, it renews no more); an
        # earlier one (which only makes the check stricter) if ctl-b was quicker than this read.
        dead = lease_status(store, time.time())
        assert alive is not None
        assert dead is not None
        if dead.epoch != alive.epoch:
            dead = alive
        assert dead.renewed_at is not None
        wait_until("ctl-b to take over", lambda: leader() == "ctl-b", 60)

        def rolled_out() -> bool:
            return all(len(runs(log_dir, s)) >= 1 and runs(log_dir, s)[-1][1] for s in SERVERS)

        try:
            wait_until("the rollout to finish", rolled_out, 90)
        except AssertionError:
            raise AssertionError(logs()) from None
        time.sleep(1.0)  # a duplicate run would show up by now
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    assert "replica_leads" in (tmp_path / "replica-ctl-b.log").read_text()
    # How soon ctl-b took the lease after it expired, by the lease's and ctl-b's own
    # clocks, not by when this process (serving S3, or descheduled) happened to look;
    # read once ctl-b has stopped (it logs lease_acquired just after the write the
    # wait above may already have seen). A standby looks once per renewal interval
    # (ttl/3); 1.5 s more for its pass on a busy machine.
    late = took_lease_at(tmp_path / "replica-ctl-b.log", dead.epoch) - (dead.renewed_at + TTL)
    assert late <= TTL / 3 + 1.5, f"took over {late:.1f}s after the lease expired (ttl {TTL}s)"

    # No server ran the new config twice, and never two servers at once (batch of one).
    intervals = []
    for server in SERVERS:
        done = runs(log_dir, server)
        assert len(done) == 1, (server, done, logs())
        start, end = done[0]
        assert end is not None
        intervals.append((start, end, server))
    intervals.sort()
    for (_, end, server), (start, _, nxt) in itertools.pairwise(intervals):
        assert end <= start, f"{server} and {nxt} ran at the same time"

    # Pointers, reports and ledger agree: every server runs the new commit's motd,
    # as reported for the generation its pointer has; the ledger names the new epoch.
    status = lease_status(store, time.time())
    assert status is not None
    assert status.epoch >= 2
    commits = set()
    for server in SERVERS:
        pointer = store.read_pointer(server)
        report = store.read_report(server)
        assert pointer is not None
        assert report is not None
        assert report.generation == pointer.generation, server
        commits.add(pointer.commit)
        entry = next(
            e
            for e in Manifest.from_dict(store.get_json_blob(pointer.manifest)).deployments
            if e.name == "web/motd"
        )
        got = report.deployments["web/motd"]
        assert (got.config, got.status) == (entry.config, "COMPLETE"), server
    head = subprocess.run(
        ["git", "-C", str(example_repo), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert commits == {head}
    ledger = read_ledger(store)
    assert ledger.epoch is not None
    assert ledger.epoch == status.epoch, "the ledger names the last leader's epoch"


def test_two_reconcile_runs_never_interleave(
    example_repo: Path, tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    """Before any agent runs, the first run cannot converge: it holds the lease
    for as long as the test needs. A second run exits 5 at once; then the agents
    start, and a third run waits (--lease-wait) and runs once the first is done."""
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    base = ["reconcile", "--repo", str(example_repo), "--store", str(store_dir)]
    cmd = [sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning"]
    # The first run ends when the agents converge the fleet, not at a deadline
    # the second run's start could outlast on a slow machine (--timeout is a hang guard).
    first = subprocess.Popen(
        [*cmd, *base, "--wait", "--timeout", "90", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            "the first run to hold the lease",
            lambda: (s := lease_status(store, time.time())) is not None and s.leader is not None,
            30,
        )
        second = setpoint(*base)
        assert second.returncode == 5, second.stdout + second.stderr
        assert "another controller holds the lease: reconcile-" in second.stderr
        assert first.poll() is None, "the first run ended before any agent ran"
        start_agents(store_dir)
        third = setpoint(*base, "--lease-wait", "60", "--json")
        assert first.poll() is not None, "the third run did not wait for the first"
        assert third.returncode == 0, third.stdout + third.stderr
    finally:
        if first.poll() is None:
            first.kill()
        out, err = first.communicate()
    assert first.returncode == 0, out + err  # converged once the agents ran


def test_sigterm_stops_the_leader_cleanly_and_a_standby_takes_over_at_once(
    example_repo: Path, tmp_path: Path
) -> None:
    """systemd's stop (SIGTERM) ends the pass in flight, releases the lease and
    exits 0, so the standby leads within its own --interval, not after the
    lease's ttl; the leader's long --interval does not delay its stop."""
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    ttl = 30.0

    def replica(name: str, interval: float) -> subprocess.Popen[str]:
        cmd = [
            sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning",
            "watch", "--repo", str(example_repo), "--branch", "main",
            "--store", str(store_dir), "--replica", name,
            "--lease-ttl", str(ttl), "--interval", str(interval),
        ]  # fmt: skip
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def leader() -> str | None:
        status = lease_status(store, time.time())
        return status.leader if status else None

    procs = [replica("ctl-a", 600.0)]
    try:
        wait_until("ctl-a to lead", lambda: leader() == "ctl-a", 90)
        procs.append(replica("ctl-b", 0.2))
        wait_until(
            "ctl-b to stand by",
            lambda: store.read_controller_doc("replica-ctl-b") is not None,
            90,
        )
        procs[0].send_signal(signal.SIGTERM)
        _, stderr = procs[0].communicate(timeout=60)
        assert procs[0].returncode == 0, stderr
        assert store.read_controller_doc("replica-ctl-a") is None, "its heartbeat is removed"
        # Released, not left to expire: the record names no holder (or already
        # ctl-b, which takes a released lease at its next look, every ttl/3).
        record = store.read_controller_doc("lease")
        assert record is not None
        assert record["holder"] in (None, "ctl-b"), record
        wait_until("ctl-b to lead", lambda: leader() == "ctl-b", 90)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
