"""``setpoint init``: what it writes and what it refuses (the e2e test deploys it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from setpoint.controller.cli.common import FAILED, OK
from setpoint.controller.cli.main import main
from setpoint.controller.definitions.repository import commit_all
from setpoint.store.bootstrap import Bootstrap
from setpoint.store.signing import SigningKey
from tests.controller.test_heat_randomstring import TEMPLATE as RANDOM_STRING_TEMPLATE
from tests.controller.test_heat_templates import dedent


def test_init_writes_a_valid_repository_and_a_local_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "fleet"
    assert main(["init", str(fleet), "--servers", "a-1,a-2,a-3"]) == OK
    out = capsys.readouterr().out
    assert f"  cd {fleet}\n  sh .setpoint/agents.sh start\n" in out
    assert "the agents: sh .setpoint/agents.sh status|stop|restart (logs in .setpoint/logs/)" in out
    assert main(["validate", "--repo", str(fleet)]) == OK
    assert "valid: 1 component, 1 stack, 1 deployment, 3 (deployment, server) pairs" in (
        capsys.readouterr().out
    )
    key = SigningKey.load(fleet / ".setpoint/keys/controller.key")
    assert (fleet / ".setpoint/keys/controller.key").stat().st_mode & 0o777 == 0o600
    for server in ("a-1", "a-2", "a-3"):
        boot = Bootstrap.from_dict(
            json.loads((fleet / f".setpoint/agents/{server}.json").read_text())
        )
        assert boot.server == server
        assert boot.trusted_keys == {"controller": str(key.public())}
        assert boot.store_url == (fleet / ".setpoint/store").as_uri()
    assert "SERVERS='a-1 a-2 a-3'" in (fleet / ".setpoint/agents.sh").read_text()
    assert (fleet / ".gitignore").read_text().endswith(".setpoint/\n")


def test_init_refuses_a_directory_in_use_or_bad_names_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine\n")
    assert main(["init", str(used)]) == FAILED
    assert "exists and is not an empty directory: nothing written" in capsys.readouterr().err
    assert [p.name for p in used.iterdir()] == ["notes.txt"]
    assert main(["init", str(tmp_path / "new"), "--servers", "ok-1,not/ok"]) == FAILED
    assert "not valid server names: 'not/ok'" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_the_key_init_writes_has_the_render_secret_beside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commands init prints name its signing key only: a Heat template with
    a RandomString validates and deploys with them, as with 'setpoint keygen'."""
    fleet = tmp_path / "fleet"
    assert main(["init", str(fleet), "--servers", "server1"]) == OK
    secret = fleet / ".setpoint/keys/controller.render-secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    (fleet / "stacks/secret.yaml").write_text(dedent(RANDOM_STRING_TEMPLATE))
    commit_all(fleet, "A Heat template with a RandomString")
    monkeypatch.setenv("SETPOINT_SIGNING_KEY", str(fleet / ".setpoint/keys/controller.key"))
    capsys.readouterr()
    assert main(["validate", "--repo", str(fleet)]) == OK, capsys.readouterr().out
