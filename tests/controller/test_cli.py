"""The ``setpoint`` command line: output a script can parse, exit codes it can trust."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.cli.common import INVALID, OK, UNAVAILABLE, USAGE
from setpoint.controller.cli.main import main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=60,
    )


def test_render_is_identical_across_processes_and_hash_seeds(example_repo: Path) -> None:
    outputs = [
        run_cli("render", "--repo", str(example_repo), "--json", env={"PYTHONHASHSEED": seed})
        for seed in ("1", "4242")
    ]
    assert [o.returncode for o in outputs] == [0, 0], outputs[0].stderr
    assert outputs[0].stdout == outputs[1].stdout
    rendered = json.loads(outputs[0].stdout)
    ids = {e["id"] for entries in rendered["servers"].values() for e in entries}
    assert all(i.startswith("blake3:") and len(i) == 71 for i in ids)


def test_validate_json_lists_every_problem(
    make_repo: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(
        {
            "stacks/a.yaml": "kind: Stack\ndeployments:\n  x: {component: nope, servers: [s1]}\n"
            "  y: {component: nope2, servers: [zz]}\n"
        }
    )
    code = main(["validate", "--repo", str(repo), "--json"])
    assert code == INVALID
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False
    found = {(p["file"], p["line"], p["message"]) for p in result["problems"]}
    assert ("stacks/a.yaml", 3, "unknown component 'nope'") in found
    assert ("stacks/a.yaml", 4, "unknown server 'zz'") in found


def test_validate_ok(example_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--repo", str(example_repo)]) == OK
    assert "valid: 4 components, 1 stack, 4 deployments" in capsys.readouterr().out


def test_render_one_server_shows_full_configs(
    example_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--repo", str(example_repo), "--server", "db-1", "--json"]) == OK
    result = json.loads(capsys.readouterr().out)
    backend = result["servers"]["db-1"][0]
    assert backend["deployment"] == "web/backend"
    assert backend["config"]["group"] == "component"
    assert [c["actions"] for c in backend["config"]["config"]["configs"]] == [
        ["CREATE", "UPDATE"],
        ["DELETE"],
    ]


def test_usage_errors_exit_64() -> None:
    result = run_cli("reconcile", "--repo", ".")
    assert result.returncode == USAGE
    assert "--store" in result.stderr


def test_unknown_store_scheme_is_an_error_not_a_local_fallback(
    example_repo: Path, tmp_path: Path
) -> None:
    result = run_cli(
        "reconcile", "--repo", str(example_repo), "--store", "ftp://example/bucket", "--once"
    )
    assert result.returncode == UNAVAILABLE
    assert "unknown store URL scheme 'ftp'" in result.stderr


def test_missing_repository_names_the_path(tmp_path: Path) -> None:
    result = run_cli("validate", "--repo", str(tmp_path / "nowhere"))
    assert result.returncode == UNAVAILABLE
    assert "nowhere" in result.stderr


def test_reconcile_once_then_status(
    example_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    assert main(["reconcile", "--repo", str(example_repo), "--store", store, "--json"]) == OK
    first = json.loads(capsys.readouterr().out)
    assert sorted(first["published"]) == ["db-1", "web-1", "web-2"]
    assert main(["reconcile", "--repo", str(example_repo), "--store", store, "--json"]) == OK
    second = json.loads(capsys.readouterr().out)
    assert second["published"] == []
    assert main(["status", "--store", store]) == OK
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "SERVER", "DEPLOYMENT", "DESIRED", "REPORTED", "STATUS", "ACTION", "GEN", "COMMIT", "AGE",
    ]  # fmt: skip
    assert any(
        line.startswith("db-1") and "web/backend" in line and "PENDING" in line for line in table
    )


def test_help_teaches_exit_codes() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "exit codes:" in result.stdout
    assert "invalid definitions" in result.stdout
    # Every exit code a command can return is in the table scripts read.
    from setpoint.controller.cli import common

    codes = {
        value
        for name, value in vars(common).items()
        if name.isupper() and type(value) is int and value < 256
    }
    listed = {
        int(line.split()[0]) for line in result.stdout.splitlines() if line[:4].strip().isdigit()
    }
    assert codes <= listed, f"exit codes missing from --help: {sorted(codes - listed)}"


@pytest.mark.parametrize("command", ["reconcile", "watch", "move", "status"])
def test_commands_that_run_passes_take_store_workers(command: str, tmp_path: Path) -> None:
    from setpoint.controller.cli.common import open_pass_store
    from setpoint.controller.cli.main import build_parser

    stores = {
        "reconcile": ["--store", str(tmp_path)],
        "watch": ["--repo", str(tmp_path), "--store", str(tmp_path)],
        "move": ["--from", str(tmp_path), "--to", str(tmp_path / "to")],
        "status": ["--store", str(tmp_path)],
    }[command]
    args = build_parser().parse_args([command, *stores, "--store-workers", "3"])
    assert open_pass_store(args, str(tmp_path)).pool.size == 3
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args([command, *stores, "--store-workers", "0"])
    assert refused.value.code == USAGE


def test_store_workers_default_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from setpoint.controller.cli.common import open_pass_store
    from setpoint.controller.cli.main import build_parser

    monkeypatch.setenv("SETPOINT_STORE_WORKERS", "6")
    args = build_parser().parse_args(["status", "--store", str(tmp_path)])
    assert open_pass_store(args, str(tmp_path)).pool.size == 6


def test_reconcile_while_another_controller_holds_the_lease(
    example_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from setpoint.controller.cli.replicas import LEASE_HELD
    from setpoint.store.lease import Lease
    from setpoint.store.local import LocalStore

    path = tmp_path / "store"
    other = Lease(LocalStore(path), "ctl-a")
    assert other.try_acquire()
    args = ["reconcile", "--repo", str(example_repo), "--store", str(path)]
    assert main(args) == LEASE_HELD
    err = capsys.readouterr().err
    assert "another controller holds the lease: ctl-a (epoch 1)" in err
    assert LocalStore(path).list_servers() == [], "published while another controller led"
    assert main(["status", "--store", str(path)]) == OK
    assert "controllers: ctl-a leading (epoch 1)" in capsys.readouterr().out
    other.release()
    assert main(args) == OK
    capsys.readouterr()
    # The run released the lease when it ended: status names no leader.
    assert main(["status", "--store", str(path), "--json"]) == OK
    controllers = json.loads(capsys.readouterr().out)["controllers"]
    assert controllers["leader"] is None
    assert controllers["epoch"] == 2


def test_status_names_controllers_only_when_an_operator_needs_them(
    example_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from setpoint.store.lease import Lease, write_heartbeat
    from setpoint.store.local import LocalStore

    path = tmp_path / "store"
    store_args = ["--store", str(path)]
    # An ordinary reconcile took and released the lease: nothing to tell.
    assert main(["reconcile", "--repo", str(example_repo), *store_args]) == OK
    capsys.readouterr()
    assert main(["status", *store_args]) == OK
    assert "controllers" not in capsys.readouterr().out
    # A reconcile in progress holds the lease.
    running = Lease(LocalStore(path), "reconcile-host-1")
    assert running.try_acquire()
    assert main(["status", *store_args]) == OK
    assert "controllers: reconcile-host-1 leading (epoch 2); no standbys" in (
        capsys.readouterr().out
    )
    running.release()
    # Replicas standing by are worth knowing even while none leads.
    write_heartbeat(LocalStore(path), "ctl-b", "standby", time.time(), 15.0)
    assert main(["status", *store_args]) == OK
    assert "controllers: no leader (epoch 2); standbys: ctl-b" in capsys.readouterr().out


def test_watch_replica_refuses_a_store_without_conditional_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from setpoint.store.base import Store
    from setpoint.store.local import LocalStore

    def no_cas(self: Store, key: str, data: bytes, version: str | None) -> str:
        return Store._put_if_match(self, key, data, version)

    monkeypatch.setattr(LocalStore, "_put_if_match", no_cas)
    (tmp_path / "repo").mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "repo")], check=True)
    code = main(
        ["watch", "--repo", str(tmp_path / "repo"), "--store", str(tmp_path / "s"),
         "--replica", "a", "--once"]
    )  # fmt: skip
    assert code != OK
    err = capsys.readouterr().err
    assert "cannot do conditional writes" in err
    assert "run a single controller, without --replica" in err


def test_watch_without_replica_refuses_to_start_beside_a_leader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from setpoint.controller.cli.common import FAILED
    from setpoint.store.lease import Lease
    from setpoint.store.local import LocalStore

    (tmp_path / "repo").mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "repo")], check=True)
    leader = Lease(LocalStore(tmp_path / "s"), "ctl-a")
    assert leader.try_acquire()
    args = ["watch", "--repo", str(tmp_path / "repo"), "--store", str(tmp_path / "s"), "--once"]
    assert main(args) == FAILED
    assert "ctl-a leads this store" in capsys.readouterr().err
    leader.release()
    assert main(args) == OK


def test_reconcile_takes_over_at_once_from_a_run_of_this_host_that_died(
    example_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from setpoint.controller.cli.replicas import LEASE_HELD, run_holder
    from setpoint.store.lease import Lease
    from setpoint.store.local import LocalStore

    path = tmp_path / "store"
    prefix = run_holder().rsplit("-", 1)[0]
    alive = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        running = Lease(LocalStore(path), f"{prefix}-{alive.pid}")
        assert running.try_acquire()
        args = ["reconcile", "--repo", str(example_repo), "--store", str(path)]
        assert main(args) == LEASE_HELD, "took the lease of a run still alive"
        running.release()
        killed = Lease(LocalStore(path), f"{prefix}-{dead.pid}")
        assert killed.try_acquire()  # and then the run is killed: never released
        assert main(args) == OK, capsys.readouterr().err
    finally:
        alive.kill()
        alive.wait()


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"setpoint {version('setpoint')}"


def test_log_options_are_taken_after_the_command_too(example_repo: Path, tmp_path: Path) -> None:
    """``setpoint reconcile ... --log-format json`` as well as ``setpoint --log-format
    json reconcile ...``; given in both places, the one after the command wins."""
    store = str(tmp_path / "store")
    got = run_cli(
        "--log-format", "console", "reconcile", "--repo", str(example_repo), "--store", store,
        "--log-format", "json",
    )  # fmt: skip
    assert got.returncode == OK, got.stderr
    events = [json.loads(line)["event"] for line in got.stderr.splitlines() if line.strip()]
    assert "reconcile_pass" in events
