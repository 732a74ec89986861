"""``setpoint gc``: mark, then sweep after the grace period, never what a
pointer, a rollback or a kept commit needs; safe beside a publish running at
the same time (memory and local stores)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.fleet.fsck import check
from setpoint.controller.fleet.gc import MARK, GcRefused, commit_blobs, gc
from setpoint.controller.rollout.ledger import LEDGER
from setpoint.store.base import pointer_key
from setpoint.store.errors import NotFound
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore
from tests.controller.published import Published, open_test_store, overwrite

T0 = 1_800_000_000.0
GRACE = 600.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "local"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Published]:
    f = Published(tmp_path, open_test_store(request.param, tmp_path))
    f.reconcile()
    yield f
    f.repo.close()


def old_and_new(fleet: Published) -> tuple[set[str], set[str]]:
    """Publish version 2 over version 1: (blobs only version 1 needed, the rest)."""
    before = set(fleet.store.list_blobs())
    fleet.commit("2")
    fleet.reconcile()
    needed = {fleet.pointer().manifest, fleet.config(), fleet.zip()}
    return before - needed, set(fleet.store.list_blobs()) - (before - needed)


def test_mark_then_sweep_after_the_grace_only(fleet: Published) -> None:
    garbage, live = old_and_new(fleet)
    assert len(garbage) == 2  # version 1's manifest and config; the zip is shared
    clock = Clock()

    first = gc(fleet.store, GRACE, clock=clock)
    assert first.marked == sorted(garbage)
    assert first.swept == []
    assert set(fleet.store.list_blobs()) == garbage | live

    clock.now += GRACE - 1  # too early: the mark stays as it was, nothing deleted
    early = gc(fleet.store, GRACE, clock=clock)
    assert early.swept == []
    assert early.sweep_after == T0 + GRACE
    assert fleet.store.read_controller_doc(MARK)["marked_at"] == T0  # type: ignore[index]

    clock.now += 1
    swept = gc(fleet.store, GRACE, clock=clock)
    assert swept.swept == sorted(garbage)
    assert set(fleet.store.list_blobs()) == live
    assert swept.marked == []  # a new mark, with nothing left to collect
    assert check(fleet.store, fleet.trusted)[0].clean


def test_a_blob_reachable_again_at_the_sweep_is_kept(fleet: Published) -> None:
    garbage, _live = old_and_new(fleet)
    clock = Clock()
    gc(fleet.store, GRACE, clock=clock)
    fleet.commit("1")  # git revert: version 1's digests come back, nothing uploaded
    fleet.reconcile()

    clock.now += GRACE
    result = gc(fleet.store, GRACE, clock=clock)
    assert result.swept == []
    assert result.kept == sorted(garbage)
    assert check(fleet.store, fleet.trusted)[0].clean


def test_blobs_written_after_the_mark_are_never_swept(fleet: Published) -> None:
    clock = Clock()
    gc(fleet.store, GRACE, clock=clock)
    late = fleet.store.put_blob(b"written after the mark, named by nothing yet")
    clock.now += GRACE
    result = gc(fleet.store, GRACE, clock=clock)
    assert late not in result.swept
    assert fleet.store.get_blob(late)
    assert late in result.marked  # it may go at the next sweep, if still unreachable


def test_rollback_targets_and_kept_commits_are_not_garbage(fleet: Published) -> None:
    first_commit = fleet.pointer().commit
    old_config, old_bundles = fleet.config(), fleet.manifest().bundles
    old_manifest = fleet.pointer().manifest
    fleet.commit("2")
    fleet.reconcile()
    ledger = {
        "rollouts": {"s/app": {"good": {"m1": {"config": old_config, "bundles": old_bundles}}}}
    }
    fleet.store.write_controller_doc(LEDGER, ledger)

    # The previous deployed commit kept (gc --keep-commits 2): its manifest too.
    keep = commit_blobs(fleet.repo, fleet.store, [first_commit])
    assert {old_config, old_manifest} <= keep
    assert gc(fleet.store, GRACE, keep=keep, dry_run=True, clock=Clock()).marked == []
    # Only the ledger: the rollback target and its zip stay, the old manifest goes.
    assert gc(fleet.store, GRACE, clock=Clock()).marked == [old_manifest]


def test_dry_run_writes_and_deletes_nothing(fleet: Published) -> None:
    garbage, _live = old_and_new(fleet)
    clock = Clock()
    gc(fleet.store, GRACE, clock=clock)
    mark = fleet.store.read_controller_doc(MARK)
    clock.now += GRACE
    fleet.store.stats.reset()
    result = gc(fleet.store, GRACE, dry_run=True, clock=clock)
    assert result.swept == sorted(garbage)
    assert fleet.store.stats.writes == 0
    assert garbage <= set(fleet.store.list_blobs())
    assert fleet.store.read_controller_doc(MARK) == mark


def test_gc_refuses_when_reachability_cannot_be_told(fleet: Published) -> None:
    old_and_new(fleet)
    fleet.store.delete_blob(fleet.pointer("m2").manifest)
    with pytest.raises(GcRefused) as err:
        gc(fleet.store, GRACE, clock=Clock())
    assert err.value.where == "agents/m1/pointer"
    overwrite(fleet.store, pointer_key("m1"), b"garbage")
    with pytest.raises(GcRefused, match="agents/m1/pointer"):
        gc(fleet.store, GRACE, clock=Clock())


def test_old_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    f = Published(tmp_path, store)
    try:
        f.reconcile()
        old = store.root / "blobs" / "ab" / ".tmp-killed"
        young = store.root / "agents" / "m1" / ".tmp-writing"
        for path in (old, young):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"partial")
        os.utime(old, (time.time() - 2 * GRACE,) * 2)
        result = gc(store, GRACE)
    finally:
        f.repo.close()
    assert result.temp_removed == ["blobs/ab/.tmp-killed"]
    assert not old.exists()
    assert young.exists()


class SweepRace(MemoryStore):
    """A publish lands between the sweep's reachability read and its delete:
    the first delete of ``digest`` is followed by ``publish`` naming it."""

    def __init__(self) -> None:
        super().__init__("sweep-race")
        self.on_delete: dict[str, Callable[[], object]] = {}

    def _delete(self, key: str) -> None:
        super()._delete(key)
        publish = self.on_delete.pop(key, None)
        if publish is not None:
            publish()


def test_sweep_puts_back_a_blob_a_publish_named_meanwhile(tmp_path: Path) -> None:
    store = SweepRace()
    fleet = Published(tmp_path, store)
    try:
        fleet.reconcile()
        first = fleet.repo.resolve("HEAD")
        v1 = {fleet.pointer().manifest, fleet.config()}
        fleet.commit("2")
        fleet.reconcile()
        clock = Clock()
        gc(store, GRACE, clock=clock)
        # The revert's publish runs right after the sweep deleted version 1's
        # first blob: it uploads that one, finds the other present, and names
        # both in its pointers; the sweep then deletes the other.
        revert = Reconciler(fleet.repo, store, rev=first, policy=fleet.policy)
        store.on_delete[min(fleet.key_of(d) for d in v1)] = revert.run_pass
        clock.now += GRACE
        result = gc(store, GRACE, clock=clock)
    finally:
        fleet.repo.close()
    # The first was uploaded again by the publish; the second had to be put back.
    assert result.restored == [max(v1, key=fleet.key_of)]
    assert result.swept == []
    assert result.kept == sorted(v1)
    assert check(store, fleet.trusted)[0].clean


class PublishRace(MemoryStore):
    """A sweep lands between the publish's existence check and its pointers:
    right after the check answers, ``doomed`` is deleted."""

    def __init__(self) -> None:
        super().__init__("publish-race")
        self.doomed: list[str] = []

    def _exists(self, keys: list[str]) -> set[str]:
        present = super()._exists(keys)
        for key in self.doomed:
            self._delete(key)
        self.doomed = []
        return present


def test_publish_uploads_again_what_a_sweep_deleted_under_it(tmp_path: Path) -> None:
    store = PublishRace()
    fleet = Published(tmp_path, store)
    try:
        fleet.reconcile()
        first = fleet.repo.resolve("HEAD")
        v1 = {fleet.pointer().manifest, fleet.config()}
        fleet.commit("2")
        fleet.reconcile()
        store.doomed = [fleet.key_of(d) for d in sorted(v1)]
        Reconciler(fleet.repo, store, rev=first, policy=fleet.policy).run_pass()
        assert fleet.pointer().manifest in v1
        assert check(store, fleet.trusted)[0].clean
    finally:
        fleet.repo.close()


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_gc_beside_a_running_publish_never_loses_a_named_blob(kind: str, tmp_path: Path) -> None:
    """A thread publishes version 1, 2, 1, 2... (every revert reuses blobs the
    last sweep may be deleting) while gc marks and sweeps with no grace."""
    fleet = Published(tmp_path, open_test_store(kind, tmp_path))
    try:
        fleet.reconcile()
        revs = [fleet.repo.resolve("HEAD"), fleet.commit("2")]
        done = threading.Event()
        errors: list[BaseException] = []

        retried = 0

        def publisher() -> None:
            nonlocal retried
            try:
                for i in range(16):
                    reconciler = Reconciler(
                        fleet.repo, fleet.store, rev=revs[i % 2], policy=fleet.policy
                    )
                    while True:
                        try:
                            reconciler.run_pass()
                            break
                        except NotFound:
                            # The pass read a pointer's manifest in the instant
                            # between a sweep's delete and its putting it back:
                            # the next pass (here, at once) finds it again.
                            retried += 1
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=publisher)
        thread.start()
        runs, swept, restored, refused = 0, 0, 0, 0
        while not done.is_set() or runs < 2:
            try:
                result = gc(fleet.store, grace=0.0)
            except GcRefused:
                # A pointer named a blob the publish had not put back yet:
                # refusing is the safe answer, the next run goes on.
                refused += 1
                continue
            runs += 1
            swept += len(result.swept)
            restored += len(result.restored)
        thread.join()
        assert not errors, errors
        print(f"gc runs={runs} swept={swept} restored={restored} refused={refused} {retried=}")
        after = check(fleet.store, fleet.trusted)[0]
        assert after.clean, [str(p) for p in after.problems]
    finally:
        fleet.repo.close()


def test_cli_keeps_the_last_deployed_commits_from_the_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "store")
    fleet = Published(tmp_path, store)
    try:
        repo, url = str(fleet.repo_path), store.url
        assert main(["reconcile", "--repo", repo, "--store", url, "--notes"]) == 0
        v1 = {fleet.pointer().manifest, fleet.config()}
        fleet.commit("2")
        assert main(["reconcile", "--repo", repo, "--store", url, "--notes"]) == 0
        capsys.readouterr()

        # Both deployed commits kept: nothing to mark.
        gc_args = ["gc", "--store", url, "--repo", repo, "--dry-run", "--json"]
        assert main([*gc_args, "--keep-commits", "2"]) == 0
        assert json.loads(capsys.readouterr().out)["marked"] == []
        # Only the last one: version 1's manifest and config are garbage.
        assert main([*gc_args, "--keep-commits", "1"]) == 0
        assert set(json.loads(capsys.readouterr().out)["marked"]) == v1
        # Without --repo, pointers and the ledger only: the same.
        assert main(["gc", "--store", url, "--dry-run", "--json"]) == 0
        assert set(json.loads(capsys.readouterr().out)["marked"]) == v1

        assert main(["gc", "--store", url, "--grace", "600"]) == 0
        assert "2 marked at" in capsys.readouterr().out
        assert main(["gc", "--store", url, "--grace", "600"]) == 0
        assert "(2 blobs) waits, sweepable from" in capsys.readouterr().out
        assert main(["gc", "--store", url, "--grace", "0"]) == 0
        out = capsys.readouterr().out
        assert out.count("deleted blob ") == 2
        assert set(store.list_blobs()).isdisjoint(v1)
        assert main(["fsck", "--store", url]) == 0
    finally:
        fleet.repo.close()


def test_cli_usage_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = LocalStore(tmp_path / "store")
    assert main(["gc", "--store", store.url, "--keep-commits", "3"]) == 64
    store.write_controller_doc("ledger", {"rollouts": {}})
    overwrite(store, pointer_key("m1"), b"garbage")
    assert main(["gc", "--store", store.url]) == 1
    assert "gc refused: agents/m1/pointer" in capsys.readouterr().err
