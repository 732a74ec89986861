"""``setpoint watch``: local and remote pushes deployed, force pushes and unsigned heads
refused, convergence recorded as git notes the git command line reads."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bench import simulate
from setpoint.controller.cli.main import main
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.gitops.commitgate import CommitGate, KeyringVerifier
from setpoint.controller.gitops.notes import CONVERGED, IN_PROGRESS, SUPERSEDED, Notebook
from setpoint.controller.gitops.source import FetchError, LocalSource, RemoteSource
from setpoint.controller.gitops.watch import Watcher
from setpoint.store.base import Store
from setpoint.store.signing import SigningKey
from setpoint.store.url import open_store
from tests.controller.gittools import Git, export_keyring, git_daemon, git_http_backend, gpg_key

COMPONENT = """\
kind: Component
inputs:
  - name: message
    type: String
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      echo "$message"
"""


def definitions(message: str) -> dict[str, str]:
    return {
        "inventory.yaml": "kind: Inventory\nservers: {s1: {}, s2: {}}\n",
        "components/motd/component.yaml": COMPONENT,
        "stacks/site.yaml": "kind: Stack\ndeployments:\n  motd:\n    component: motd\n"
        f"    servers: [s1, s2]\n    input_values: {{message: {message!r}}}\n",
    }


def agents_report(store: Store) -> None:
    """Every agent runs what its pointer names and reports it COMPLETE."""
    for server in store.list_servers():
        simulate.answer(store, server)


def commits_in_store(store: Store) -> set[str]:
    return {p.commit for s in store.list_servers() if (p := store.read_pointer(s)) is not None}


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path / "home")


@pytest.fixture
def work(git: Git, tmp_path: Path) -> Path:
    """A working clone with one commit on main."""
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git.commit_files(repo, definitions("one"), "first")
    return repo


@pytest.fixture
def bare(git: Git, work: Path, tmp_path: Path) -> Path:
    """A bare repository people push to, holding ``work``'s main."""
    bare = tmp_path / "served" / "site.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")
    return bare


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "store"))


def local_watcher(repo: Path, store: Store, **kwargs: object) -> Watcher:
    source = LocalSource(repo, "main")
    gate = CommitGate(source.path, **kwargs)  # type: ignore[arg-type]
    return Watcher(source, store, gate, interval=5.0)


def test_step_deploys_the_head_and_records_convergence_in_a_note(
    git: Git, work: Path, store: Store
) -> None:
    head = git(work, "rev-parse", "HEAD")
    watcher = local_watcher(work, store)
    first = watcher.step()
    assert first.deploying == head
    assert commits_in_store(store) == {head}
    assert first.record is not None
    assert first.record.outcome == IN_PROGRESS
    agents_report(store)
    done = watcher.step()
    assert done.record is not None
    assert done.record.outcome == CONVERGED
    assert done.record.servers == {"s1": "converged", "s2": "converged"}
    log = git(work, "log", "--notes=setpoint", "-1", "--format=%H%n%N")
    assert log.startswith(head)
    assert "setpoint default: converged in" in log
    assert "2 converged, 0 failed, 0 pending; 0 rollbacks" in log
    # The record names the configs that converged: what promotion and reverts look up.
    (record,) = Notebook(work).read(head).values()
    assert list(record.configs) == ["site/motd"]
    # A pass with nothing new writes no new notes commit.
    notes_before = Notebook(work).notes_head()
    watcher.step()
    assert Notebook(work).notes_head() == notes_before


def test_a_newer_commit_supersedes_one_still_converging(git: Git, work: Path, store: Store) -> None:
    watcher = local_watcher(work, store)
    first = git(work, "rev-parse", "HEAD")
    watcher.step()
    # The agents finish (a batch boundary), but before the watcher records it,
    # a newer commit lands: the watcher moves on.
    agents_report(store)
    second = git.commit_files(work, definitions("two"), "second")
    result = watcher.step()
    assert result.deploying == second
    assert commits_in_store(store) == {second}
    old = Notebook(work).record(first, None)
    assert old is not None
    assert old.outcome == SUPERSEDED
    assert old.superseded_by == second
    # A restarted controller picks up where the store says it was.
    again = local_watcher(work, store)
    assert again.current == second
    assert again.record is not None
    assert again.record.outcome == IN_PROGRESS


def test_a_local_push_is_picked_up_by_watching_not_by_the_poll(
    git: Git, work: Path, bare: Path, store: Store
) -> None:
    source = LocalSource(bare, "main")
    # The poll interval is far longer than any wait below, so a deploy within one
    # came from watching the refs; the waits are hang guards a busy machine's
    # slow pass stays well within. (How fast is a figure for the benchmarks.)
    watcher = Watcher(source, store, CommitGate(source.path), interval=600.0)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: commits_in_store(store) == {git(work, "rev-parse", "HEAD")}, 60)
        agents_report(store)
        assert source.watching, "watchdog did not start: the push would wait for a poll"
        new = git.commit_files(work, definitions("pushed"), "pushed")
        git(work, "push", "-q", "origin", "main")
        wait_for(lambda: commits_in_store(store) == {new}, 60)
    finally:
        stop.set()
        source._changed.set()  # wake the loop now
        thread.join(timeout=10)
    assert not thread.is_alive()


def wait_for(condition: object, seconds: float) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_a_remote_push_over_a_file_url_is_fetched_into_the_mirror(
    git: Git, work: Path, bare: Path, store: Store, tmp_path: Path
) -> None:
    clock = [0.0]
    source = RemoteSource(bare.as_uri(), "main", tmp_path / "mirror", 10.0, clock=lambda: clock[0])
    watcher = Watcher(source, store, CommitGate(source.path))
    assert watcher.step().deploying == git(work, "rev-parse", "HEAD")
    agents_report(store)
    new = git.commit_files(work, definitions("remote"), "remote change")
    git(work, "push", "-q", "origin", "main")
    clock[0] = 5.0  # within the interval: not fetched yet
    assert watcher.step().deploying != new
    clock[0] = 10.0  # one interval later
    assert watcher.step().deploying == new
    assert commits_in_store(store) == {new}
    # The mirror is the controller's own: the notes are written there.
    assert Notebook(tmp_path / "mirror").record(new, None) is not None


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
def test_wake_ends_the_wait_between_passes_at_once(
    bare: Path, tmp_path: Path, remote: bool
) -> None:
    """A stopping daemon (SIGTERM) wakes its source: the wait between passes,
    up to --interval or --fetch-interval long, must not delay the stop."""
    source: LocalSource | RemoteSource = (
        RemoteSource(bare.as_uri(), "main", tmp_path / "mirror", 90.0)
        if remote
        else LocalSource(bare, "main")
    )
    threading.Timer(0.2, source.wake).start()
    started = time.monotonic()
    source.wait(90.0)
    assert time.monotonic() - started < 60.0


def test_a_remote_push_over_git_daemon_and_notes_pushed_back(
    git: Git, work: Path, bare: Path, store: Store, tmp_path: Path
) -> None:
    with git_daemon(git, bare.parent) as base_url:
        url = f"{base_url}/site.git"
        watch = ["watch", "--repo", url, "--branch", "main", "--store", str(tmp_path / "store"),
                 "--mirror", str(tmp_path / "mirror"), "--once", "--push-notes",
                 "--fetch-interval", "0"]  # fmt: skip
        assert main(watch) == 0  # publishes the first commit
        agents_report(store)
        assert main(watch) == 0  # sees it converged
        new = git.commit_files(work, definitions("over git://"), "over the daemon")
        git(work, "push", "-q", "origin", "main")
        assert main(watch) == 0
    assert commits_in_store(store) == {new}
    # The notes went back to the served repository, readable by git there.
    log = git(bare, "log", "--notes=setpoint", "--format=%s: %N", "main")
    assert "over the daemon: setpoint default: in-progress: 0 converged" in log
    assert "first: setpoint default: converged in" in log


def test_a_force_push_is_refused_unless_allowed(git: Git, work: Path, store: Store) -> None:
    first = git(work, "rev-parse", "HEAD")
    second = git.commit_files(work, definitions("two"), "second")
    watcher = local_watcher(work, store)
    assert watcher.step().deploying == second
    agents_report(store)
    git(work, "reset", "-q", "--hard", first)
    rewritten = git.commit_files(work, definitions("rewritten"), "rewritten history")
    result = watcher.step()
    assert result.refused is not None
    assert "not a fast-forward" in result.refused.reason
    assert "--allow-force-push" in result.refused.reason
    assert result.deploying == second
    assert commits_in_store(store) == {second}
    allowing = local_watcher(work, store, allow_force_push=True)
    assert allowing.step().deploying == rewritten
    assert commits_in_store(store) == {rewritten}


def test_an_invalid_head_is_skipped_and_the_last_good_commit_stays(
    git: Git, work: Path, store: Store
) -> None:
    good = git(work, "rev-parse", "HEAD")
    watcher = local_watcher(work, store)
    watcher.step()
    bad = {"stacks/site.yaml": "kind: Stack\ndeployments: {x: {component: no}}\n"}
    git.commit_files(work, bad, "bad")
    result = watcher.step()
    assert result.refused is not None
    assert "invalid definitions" in result.refused.reason
    assert result.deploying == good
    assert commits_in_store(store) == {good}


def test_unsigned_heads_are_skipped_under_require_signed(
    git: Git, work: Path, store: Store, tmp_path: Path
) -> None:
    with gpg_key(git, "releaser") as trusted, gpg_key(git, "stranger") as stranger:
        keyring = export_keyring(git, trusted, tmp_path / "keyring.gpg")
        signed = git.commit_files(work, definitions("signed"), "signed", f"-S{trusted}")
        source = LocalSource(work, "main")
        verifier = KeyringVerifier(keyring)
        try:
            watcher = Watcher(source, store, CommitGate(source.path, verifier=verifier))
            assert watcher.step().deploying == signed
            agents_report(store)
            git.commit_files(work, definitions("unsigned"), "unsigned")
            result = watcher.step()
            assert result.refused is not None
            assert result.refused.reason == "unsigned"
            assert result.deploying == signed
            git.commit_files(work, definitions("other key"), "other key", f"-S{stranger}")
            result = watcher.step()
            assert result.refused is not None
            assert result.refused.reason == "signed by a key that is not in the keyring"
            assert commits_in_store(store) == {signed}
            again = git.commit_files(work, definitions("signed again"), "again", f"-S{trusted}")
            assert watcher.step().deploying == again
        finally:
            verifier.close()


def test_history_lists_deployed_commits_newest_first(
    git: Git, work: Path, store: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    watcher = local_watcher(work, store)
    first = git(work, "rev-parse", "HEAD")
    watcher.step()
    agents_report(store)
    watcher.step()
    # Two commits land between passes: only the newest is deployed.
    git.commit_files(work, definitions("undeployed"), "never deployed")
    second = git.commit_files(work, definitions("two"), "second")
    watcher.step()
    assert main(["history", "--repo", str(work), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["commit"] for c in doc["commits"]] == [second, first]
    assert [c["outcome"] for c in doc["commits"]] == [IN_PROGRESS, CONVERGED]
    assert doc["commits"][1]["subject"] == "first"
    assert doc["commits"][1]["author"] == "Ada Author <ada@example.invalid>"
    assert doc["servers"] == {"s1": first, "s2": first}  # from the notes: what converged
    assert main(["history", "--repo", str(work), "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert f"{second[:12]}" in out
    assert "in-progress" in out
    assert f"s1: {second[:12]} (converging)" in out


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_remote_push_over_git_http_backend_and_notes_pushed_back(
    git: Git,
    work: Path,
    bare: Path,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
) -> None:
    tls = tmp_path / "tls" if scheme == "https" else None
    with git_http_backend(git, bare.parent, tls) as base_url:
        assert base_url.startswith(f"{scheme}://127.0.0.1:")
        if tls is not None:
            home = tmp_path / "controller-home"
            home.mkdir()
            monkeypatch.setenv("HOME", str(home))
            # Certificates are verified: a self-signed one nobody trusts is refused.
            untrusted = RemoteSource(f"{base_url}/site.git", "main", tmp_path / "m0", 0.0)
            with pytest.raises(FetchError, match=r"(?i)certificate"):
                untrusted.refresh()
            # Trusted the way git users trust one: http.sslCAInfo in their git config.
            (home / ".gitconfig").write_text(f"[http]\n\tsslCAInfo = {tls / 'cert.pem'}\n")
            monkeypatch.setenv("HOME", str(home))
        url = f"{base_url}/site.git"
        watch = ["watch", "--repo", url, "--branch", "main", "--store", str(tmp_path / "store"),
                 "--mirror", str(tmp_path / "mirror"), "--once", "--push-notes",
                 "--fetch-interval", "0"]  # fmt: skip
        assert main(watch) == 0  # publishes the first commit
        first = git(work, "rev-parse", "HEAD")
        assert commits_in_store(store) == {first}
        agents_report(store)
        assert main(watch) == 0  # sees it converged, pushes the note
        new = git.commit_files(work, definitions(f"over {scheme}"), f"over {scheme}")
        git(work, "push", "-q", "origin", "main")
        assert main(watch) == 0
        assert commits_in_store(store) == {new}
    # The notes went back over HTTP(S), readable by git in the served repository.
    log = git(bare, "log", "--notes=setpoint", "--format=%s: %N", "main")
    assert f"over {scheme}: setpoint default: in-progress: 0 converged" in log
    assert "first: setpoint default: converged in" in log


def test_an_idle_watch_runs_one_pass_per_interval_not_one_per_read_of_its_refs(
    work: Path, store: Store
) -> None:
    """The watcher's own reads of the branch ref (open, close-without-write) and its
    own note writes must not wake it: idle, it passes once per interval."""
    source = LocalSource(work, "main")
    watcher = Watcher(source, store, CommitGate(source.path), interval=0.5)
    stop = threading.Event()
    passes: list[int] = []
    thread = threading.Thread(target=lambda: passes.append(watcher.run(stop=stop)), daemon=True)
    idle = 3.0
    thread.start()
    try:
        time.sleep(idle)
        assert source.watching, "watchdog did not start: this test proves nothing by polling"
    finally:
        stop.set()
        source._changed.set()  # wake the loop now
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert passes[0] <= idle / watcher.interval + 1, f"{passes[0]} passes in {idle} s idle"


def test_replicas_one_leads_the_standby_takes_over_when_it_goes_silent(
    git: Git, work: Path, store: Store
) -> None:
    from setpoint.store.lease import Lease, lease_status

    now = [1_800_000_000.0]

    def clock() -> float:
        return now[0]

    def replica(name: str) -> Watcher:
        source = LocalSource(work, "main")
        lease = Lease(store, name, ttl=9.0, clock=clock)
        return Watcher(
            source, store, CommitGate(source.path), interval=10.0, clock=clock, lease=lease
        )

    first, second = replica("r1"), replica("r2")
    assert first.wait_between_passes == 3.0, "renewed three times per ttl"
    assert not first.step().standby
    head = git(work, "rev-parse", "HEAD")
    assert commits_in_store(store) == {head}
    assert second.step().standby
    status = lease_status(store, clock())
    assert status is not None
    assert status.leader == "r1"
    assert [r.name for r in status.standbys] == ["r2"]
    # r1 keeps renewing: r2 stays a standby.
    for _ in range(4):
        now[0] += 3.0
        assert not first.step().standby
        assert second.step().standby
    # r1 dies (no more steps). Within one ttl, r2 leads and deploys a new commit.
    new_head = git.commit_files(work, definitions("two"), "second")
    taken_over = None
    for n in range(1, 5):
        now[0] += 3.0
        result = second.step()
        if not result.standby:
            taken_over = n * 3.0
            break
    assert taken_over is not None
    assert taken_over <= 9.0 + 3.0
    assert second.lease is not None
    assert second.lease.epoch == 2
    assert commits_in_store(store) == {new_head}
    # r1 wakes: its lease is gone, it stands by and writes nothing.
    assert first.step().standby
    assert commits_in_store(store) == {new_head}


def test_a_watch_that_cannot_verify_the_fleet_keeps_serving_and_says_why(
    git: Git, work: Path, store: Store
) -> None:
    """Pointers signed by a key this daemon does not trust: each pass refuses to
    publish (nothing is downgraded) and the daemon lives on, naming the remedy."""
    signed_by_old = SigningKey.generate("old")
    first = local_watcher(work, store)
    first.policy = PointerPolicy(signed_by_old)
    first.step()
    before = {s: store.read_pointer(s) for s in store.list_servers()}
    watcher = local_watcher(work, store)
    watcher.policy = PointerPolicy(SigningKey.generate("new"))
    git.commit_files(work, definitions("two"), "second")
    with capture_logs() as logs:
        result = watcher.step()
    assert result.outcome is None
    assert {s: store.read_pointer(s) for s in store.list_servers()} == before
    [refused] = [e for e in logs if e["event"] == "pass_refused"]
    assert "--trusted-key" in refused["error"]
    # And with the old key trusted (a rotation), the pass goes on.
    watcher.policy = PointerPolicy(
        SigningKey.generate("new"), verify_keys=(str(signed_by_old.public()),)
    )
    assert watcher.step().outcome is not None


def test_watch_follows_the_branch_head_names_by_default_as_reconcile_does(
    git: Git, work: Path, bare: Path, store: Store, tmp_path: Path
) -> None:
    """``--branch`` defaults to HEAD for watch as for reconcile: the branch HEAD
    names, locally and on a remote."""
    git(work, "checkout", "-q", "-b", "feature")
    feature = git.commit_files(work, definitions("feature"), "on feature")
    local = LocalSource(work, "HEAD")
    assert local.head() == feature
    assert local.ref == b"refs/heads/feature"
    remote = RemoteSource(bare.as_uri(), "HEAD", tmp_path / "mirror", 10.0)
    remote.refresh()
    assert remote.head() == git(bare, "rev-parse", "main")
    code = main(["watch", "--repo", str(work), "--store", str(tmp_path / "s"), "--once"])
    assert code == 0
    assert commits_in_store(open_store(str(tmp_path / "s"))) == {feature}
