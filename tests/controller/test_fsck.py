"""``setpoint fsck``: every store invariant checked on a real published fleet
(memory and local stores), broken on purpose one at a time, and repaired."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.fleet import fsck as fsckmod
from setpoint.controller.fleet.fsck import check, fsck
from setpoint.store.base import pointer_key, report_key
from setpoint.store.digest import canonical_json
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey
from tests.controller.conftest import RepoFactory
from tests.controller.published import SERVERS, Published, open_test_store, overwrite


@pytest.fixture(params=["memory", "local"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Published]:
    f = Published(tmp_path, open_test_store(request.param, tmp_path))
    f.reconcile()
    yield f
    f.repo.close()


def kinds(result: fsckmod.FsckResult) -> list[tuple[str, str]]:
    return sorted((p.kind, p.where) for p in result.problems)


def test_a_freshly_published_store_is_clean(fleet: Published) -> None:
    result = fsck(fleet.store, fleet.trusted)
    assert result.clean, result.problems
    assert result.servers == len(SERVERS)
    # A manifest, a config and its directory zip, shared by the three servers.
    assert result.blobs_checked == 3
    assert result.signatures_checked


def test_corrupt_blob_is_found_and_repaired_from_its_commit(fleet: Published) -> None:
    config = fleet.config()
    overwrite(fleet.store, fleet.key_of(config), b'{"tampered": true}')

    found = fsck(fleet.store, fleet.trusted)
    (problem,) = found.problems
    assert problem.kind == fsckmod.BLOB_CORRUPT
    assert problem.digest == config
    assert "config of s/app on m1" in problem.detail

    repaired = fsck(fleet.store, fleet.trusted, repo=fleet.repo)
    assert repaired.clean, repaired.problems
    assert repaired.repaired == {config: "re-rendered"}
    assert fleet.store.get_json_blob(config)["name"] == "app"
    assert check(fleet.store, fleet.trusted)[0].clean


@pytest.mark.parametrize("which", ["manifest", "config", "zip"])
def test_missing_blob_is_found_and_repaired(fleet: Published, which: str) -> None:
    digest = {"manifest": fleet.pointer().manifest, "config": fleet.config(), "zip": fleet.zip()}[
        which
    ]
    fleet.store.delete_blob(digest)

    found = fsck(fleet.store, fleet.trusted)
    assert [(p.kind, p.digest) for p in found.problems] == [(fsckmod.BLOB_MISSING, digest)]

    repaired = fsck(fleet.store, fleet.trusted, repo=fleet.repo)
    assert repaired.clean, repaired.problems
    assert digest in repaired.repaired
    assert fleet.store.get_blob(digest)


def test_repair_goes_below_a_lost_manifest(fleet: Published) -> None:
    """With the manifest gone, what it names cannot be checked until it is back."""
    manifest, config, zip_digest = fleet.pointer().manifest, fleet.config(), fleet.zip()
    for digest in (manifest, config, zip_digest):
        fleet.store.delete_blob(digest)
    assert [p.digest for p in fsck(fleet.store, fleet.trusted).problems] == [manifest]

    repaired = fsck(fleet.store, fleet.trusted, repo=fleet.repo)
    assert repaired.clean, repaired.problems
    assert set(repaired.repaired) == {manifest, config, zip_digest}


def test_a_blob_the_commit_no_longer_renders_is_reported_not_invented(
    fleet: Published, make_repo: RepoFactory
) -> None:
    # The pointer names a commit the repository given for repair never had.
    config = fleet.config()
    fleet.store.delete_blob(config)
    with GitRepo.open(make_repo({"README": "another repository\n"})) as other:
        result = fsck(fleet.store, fleet.trusted, repo=other)
    assert not result.clean
    assert config in result.unrepairable
    assert "cannot render" in result.unrepairable[config]


def test_forged_pointers_fail_signature(fleet: Published) -> None:
    genuine = fleet.pointer("m1")
    mallory = SigningKey.generate("ctl")  # same name, another key
    forged = dataclasses.replace(genuine, generation=genuine.generation + 1, signature=None)
    forged = dataclasses.replace(forged, signature=mallory.sign(forged.payload()))
    overwrite(fleet.store, pointer_key("m1"), canonical_json(forged.to_dict()))
    unsigned = dataclasses.replace(fleet.pointer("m2"), key=None, signature=None)
    overwrite(fleet.store, pointer_key("m2"), canonical_json(unsigned.to_dict()))

    result = fsck(fleet.store, fleet.trusted)
    assert kinds(result) == [
        (fsckmod.POINTER_SIGNATURE, "agents/m1/pointer"),
        (fsckmod.POINTER_SIGNATURE, "agents/m2/pointer"),
    ]
    assert "does not verify" in str(result.problems[0])
    assert "not signed" in str(result.problems[1])
    # Without trusted keys nothing can be said about signatures, and fsck says so.
    unchecked = fsck(fleet.store, None)
    assert unchecked.clean
    assert "NOT checked" in unchecked.summary()


def test_pointer_that_does_not_parse_or_names_another_server(fleet: Published) -> None:
    overwrite(fleet.store, pointer_key("m1"), b"not json")
    elsewhere = canonical_json(fleet.pointer("m2").to_dict())
    overwrite(fleet.store, pointer_key("m3"), elsewhere)

    result = fsck(fleet.store, fleet.trusted)
    assert kinds(result) == [
        (fsckmod.POINTER_INVALID, "agents/m1/pointer"),
        (fsckmod.POINTER_INVALID, "agents/m3/pointer"),
    ]
    assert "names server 'm2'" in str(result.problems[1])


def test_report_at_the_wrong_path_and_from_the_future(fleet: Published) -> None:
    generation = fleet.pointer("m1").generation
    # m2's report, put where m1's belongs.
    stray = fleet.report("m2", generation)
    overwrite(fleet.store, report_key("m1"), canonical_json(stray.to_dict()))
    fleet.store.write_report(fleet.report("m2", generation + 5))
    overwrite(fleet.store, report_key("m3"), b"[]")

    result = fsck(fleet.store, fleet.trusted)
    assert kinds(result) == [
        (fsckmod.GENERATION, "agents/m2/report"),
        (fsckmod.REPORT_INVALID, "agents/m3/report"),
        (fsckmod.REPORT_PATH, "agents/m1/report"),
    ]
    (future,) = (p for p in result.problems if p.kind == fsckmod.GENERATION)
    assert f"answers generation {generation + 5}, but the pointer is at generation 1" in str(future)


def test_missing_rollback_target_is_a_problem(fleet: Published) -> None:
    config, bundles = fleet.config(), fleet.manifest().bundles
    fleet.commit("2")
    fleet.reconcile()
    assert fleet.config() != config
    ledger = {
        "kind": "ControllerLedger",
        "rollouts": {
            "s/app": {"commit": "x", "good": {"m1": {"config": config, "bundles": bundles}}},
        },
    }
    fleet.store.write_controller_doc("ledger", ledger)
    assert fsck(fleet.store, fleet.trusted).clean
    fleet.store.delete_blob(config)

    result = fsck(fleet.store, fleet.trusted)
    (problem,) = result.problems
    assert (problem.kind, problem.digest) == (fsckmod.BLOB_MISSING, config)
    assert "rollback target of s/app on m1" in problem.detail
    # The commits the pointers name render it no more (version 2 now): not repairable.
    assert config in fsck(fleet.store, fleet.trusted, repo=fleet.repo).unrepairable


def test_leftover_temporary_files_of_a_local_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    f = Published(tmp_path, store)
    try:
        f.reconcile()
        leftover = store.root / "blobs" / "ab" / ".tmp-killed"
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half a blob")
        old = time.time() - 7200
        os.utime(leftover, (old, old))
        result = fsck(store, f.trusted)
    finally:
        f.repo.close()
    (problem,) = result.problems
    assert (problem.kind, problem.where) == (fsckmod.TEMP_LEFTOVER, "blobs/ab/.tmp-killed")
    assert "7200s old" in problem.detail or "7201s old" in problem.detail


@pytest.fixture
def local_fleet(tmp_path: Path) -> Iterator[Published]:
    f = Published(tmp_path, LocalStore(tmp_path / "store"))
    f.reconcile()
    yield f
    f.repo.close()


def test_cli_exit_codes_and_json(
    local_fleet: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = local_fleet
    url = fleet.store.url
    trusted = ["--trusted-key", str(fleet.key.public())]

    assert main(["fsck", "--store", url, *trusted]) == 0
    out = capsys.readouterr().out
    assert "3 servers, 3 blobs checked, signatures verified: 0 problems" in out

    config = fleet.config()
    overwrite(fleet.store, fleet.key_of(config), b"garbage")
    assert main(["fsck", "--store", url, *trusted, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["clean"] is False
    assert [p["kind"] for p in doc["problems"]] == ["blob-corrupt"]

    assert main(["fsck", "--store", url, *trusted, "--repair"]) == 64  # needs --repo
    capsys.readouterr()
    code = main(["fsck", "--store", url, *trusted, "--repair", "--repo", str(fleet.repo_path)])
    assert code == 0
    assert "1 blob repaired" in capsys.readouterr().out


def test_cli_trusts_the_signing_key_file(
    local_fleet: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = local_fleet.repo_path.parent / "ctl.key"
    local_fleet.key.save(secret)
    other = SigningKey.generate("other").public()
    url = local_fleet.store.url
    assert main(["fsck", "--store", url, "--signing-key", str(secret)]) == 0
    assert main(["fsck", "--store", url, "--trusted-key", str(other)]) == 1
    out = capsys.readouterr().out
    assert "agents/m1/pointer: signature: signed by key 'ctl', which is not trusted" in out


def test_cli_store_unusable_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fsck", "--store", "nosuch://bucket"]) == 4
    assert "nosuch" in capsys.readouterr().err


def test_a_pointer_whose_trust_set_leaves_out_its_own_key(fleet: Published) -> None:
    pointer = fleet.pointer("m1")
    other = str(SigningKey.generate("next").public())
    unsigned = dataclasses.replace(pointer, generation=2, trust={"next": other}, signature=None)
    fleet.store.write_pointer(fleet.policy.sign(unsigned), pointer)
    (problem,) = fsck(fleet.store, fleet.trusted).problems
    assert str(problem) == "agents/m1/pointer: its trust set leaves out its own key 'ctl'"


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("fsck", "gc"):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert "exit codes:" in out
        assert "4   the store" in out
