"""Keys, enrolment and signed pointers from the controller's side."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from setpoint.controller.cli.common import FAILED, OK, UNAVAILABLE
from setpoint.controller.cli.main import main
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo
from setpoint.store.bootstrap import Bootstrap
from setpoint.store.memory import MemoryStore
from setpoint.store.signing import PublicKey, SigningKey


def test_keygen_writes_a_secret_and_prints_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "ctl-1", "--out", str(tmp_path)]) == OK
    printed = capsys.readouterr().out.strip()
    public = PublicKey.parse(printed)
    assert public.name == "ctl-1"
    assert (tmp_path / "ctl-1.pub").read_text().strip() == printed
    secret = tmp_path / "ctl-1.key"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert SigningKey.load(secret).public() == public
    assert main(["keygen", "ctl-1", "--out", str(tmp_path)]) == FAILED
    assert "not overwriting" in capsys.readouterr().err


def test_enroll_prints_a_bootstrap_with_the_trusted_key(
    tmp_path: Path, example_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = SigningKey.generate("ctl-1")
    key.save(tmp_path / "ctl-1.key")
    store = str(tmp_path / "store")
    args = ["enroll", "web-1", "--repo", str(example_repo), "--store", store]
    args += ["--signing-key", str(tmp_path / "ctl-1.key")]
    assert main(args) == OK
    boot = Bootstrap.from_dict(json.loads(capsys.readouterr().out))
    assert boot.server == "web-1"
    assert boot.trusted_keys == {"ctl-1": str(key.public())}
    assert boot.store_url == (tmp_path / "store").as_uri()
    assert boot.capabilities is None

    assert main([*args, "--cloud-init"]) == OK
    user_data = capsys.readouterr().out
    assert user_data.startswith("#cloud-config\n")
    written = yaml.safe_load(user_data)["write_files"]
    assert Bootstrap.from_dict(json.loads(written[0]["content"])) == boot
    assert "--bootstrap /etc/setpoint/bootstrap.json" in written[1]["content"]


def test_enroll_needs_a_signing_key_and_a_reachable_store(
    tmp_path: Path, example_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enroll = ["enroll", "web-1", "--repo", str(example_repo)]
    assert main([*enroll, "--store", str(tmp_path)]) == FAILED
    assert "no signing key" in capsys.readouterr().err
    SigningKey.generate("k").save(tmp_path / "k.key")
    key = ["--signing-key", str(tmp_path / "k.key")]
    assert main([*enroll, "--store", "memory://x", *key]) == FAILED
    assert "cannot be reached by an agent" in capsys.readouterr().err
    assert main([*enroll, "--store", str(tmp_path), "--signing-key", "nope"]) == UNAVAILABLE
    assert "nope" in capsys.readouterr().err


def test_enroll_refuses_a_server_the_inventory_does_not_list(
    tmp_path: Path, example_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    SigningKey.generate("k").save(tmp_path / "k.key")
    args = ["--store", str(tmp_path / "store"), "--signing-key", str(tmp_path / "k.key")]
    for agent in ("setpoint", "heat"):
        code = main(["enroll", "web-9", "--repo", str(example_repo), "--agent", agent, *args])
        assert code == FAILED
        captured = capsys.readouterr()
        assert captured.out == ""  # no bootstrap for a server nothing deploys to
        assert "cannot enroll 'web-9': not in inventory.yaml" in captured.err
        assert "(servers: db-1, web-1, web-2)" in captured.err
    # Not a definitions repository: said, not a bootstrap for anything.
    code = main(["enroll", "web-1", "--repo", str(tmp_path), *args])
    assert code == UNAVAILABLE
    assert str(tmp_path) in capsys.readouterr().err


def test_enroll_run_outside_a_definitions_repository_says_to_pass_repo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    SigningKey.generate("k").save(tmp_path / "k.key")
    args = ["--store", str(tmp_path / "store"), "--signing-key", str(tmp_path / "k.key")]
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)

    def refused(why: str) -> None:
        assert main(["enroll", "web-1", *args]) == UNAVAILABLE
        captured = capsys.readouterr()
        assert captured.out == ""
        assert f"setpoint: . is not a definitions repository ({why}):" in captured.err
        assert "run this in one or pass --repo DIR" in captured.err

    refused("not a git repository")
    subprocess.run(["git", "init", "-q", "-b", "main", "."], check=True)
    refused("no commit at HEAD")
    (here / "app.py").write_text("")
    subprocess.run(["git", "add", "app.py"], check=True)
    git_commit = ["git", "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "x"]
    subprocess.run(git_commit, check=True)
    refused("no inventory.yaml at HEAD")
    assert not (tmp_path / "store").exists()


def test_pointers_are_signed_and_an_announced_key_rewrites_them_once(
    example_repo: Path,
) -> None:
    store = MemoryStore("signed")
    k1, k2 = SigningKey.generate("ctl-1"), SigningKey.generate("ctl-2")
    with GitRepo.open(example_repo) as repo:
        Reconciler(repo, store, policy=PointerPolicy(k1)).run_pass()
        pointer = store.read_pointer("db-1")
        assert pointer is not None
        assert pointer.key == "ctl-1"
        assert pointer.trust == {"ctl-1": str(k1.public())}
        k1.public().verify(pointer.payload(), pointer.signature or "")

        store.stats.reset()
        Reconciler(repo, store, policy=PointerPolicy(k1)).run_pass()
        assert store.stats.writes == 0

        announce = PointerPolicy(k1, announce=(str(k2.public()),))
        outcome = Reconciler(repo, store, policy=announce).run_pass()
        assert sorted(outcome.published.changed) == ["db-1", "web-1", "web-2"]
        after = store.read_pointer("db-1")
        assert after is not None
        assert after.generation == pointer.generation + 1
        assert after.manifest == pointer.manifest
        assert after.trust == {"ctl-1": str(k1.public()), "ctl-2": str(k2.public())}
        store.stats.reset()
        Reconciler(repo, store, policy=announce).run_pass()
        assert store.stats.writes == 0
