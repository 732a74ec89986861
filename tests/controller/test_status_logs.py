"""``setpoint status`` and ``setpoint logs``: why a deployment failed, with the
tails of its streams and secrets masked; filters; exit codes for scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.cli.common import FAILED, OK, UNAVAILABLE
from setpoint.controller.cli.main import main
from setpoint.controller.converge.status import fleet_status
from setpoint.controller.rollout.ledger import Ledger, Rollout, write_ledger
from setpoint.store.digest import short
from setpoint.store.documents import DeploymentReport, Manifest, ManifestEntry, Pointer, Report
from setpoint.store.local import LocalStore
from setpoint.store.masking import MASK
from setpoint.store.timestamps import format_timestamp

SECRET = "hunter2-very-secret"
INPUTS: list[dict[str, Any]] = [
    {"name": "password", "type": "String", "value": SECRET, "hidden": True},
    {"name": "user", "type": "String", "value": "admin"},
]


def now_iso(ago: float = 0.0) -> str:
    import time

    return format_timestamp(time.time() - ago, digits=3)


def run(
    deployment: str,
    config: str,
    status: str,
    *,
    stdout: str = "",
    stderr: str = "",
    reason: str | None = None,
    exit_code: int | None = None,
    started_ago: float = 10.0,
) -> DeploymentReport:
    return DeploymentReport(
        deployment,
        config,
        "CREATE",
        status,
        stdout_tail=stdout,
        stderr_tail=stderr,
        exit_code=exit_code,
        attempts=1,
        started_at=now_iso(started_ago),
        finished_at=None if status == "IN_PROGRESS" else now_iso(started_ago - 2.5),
        reason=reason,
        final=status != "IN_PROGRESS",
    )


def script(body: str, inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": "app",
        "group": "script",
        "config": body,
        "inputs": inputs or [],
        "outputs": [],
        "options": {},
    }


def publish(store: LocalStore, server: str, configs: dict[str, dict[str, Any]]) -> Pointer:
    """Blobs, manifest, then pointer, as the controller publishes."""
    digests = {name: store.put_json_blob(body) for name, body in configs.items()}
    entries = tuple(ManifestEntry(n, d, ("CREATE", "UPDATE"), 60.0) for n, d in digests.items())
    manifest = store.put_json_blob(Manifest(entries).to_dict())
    pointer = Pointer(server, 1, manifest, "c0ffee", now_iso())
    store.write_pointer(pointer, None)
    return pointer


def fleet(tmp_path: Path, servers: dict[str, str | None]) -> tuple[Path, dict[str, str]]:
    """A local store where each server of ``servers`` has ``app/db`` (with a
    secret input) and ``app/web``, and ``app/db`` ran to the status given (None:
    the agent never reported). Reports are written as an agent that does not
    mask would write them: the secret in cleartext."""
    path = tmp_path / "store"
    store = LocalStore(path)
    digests: dict[str, str] = {}
    for server, db_status in servers.items():
        configs = {"app/db": script("echo $password", INPUTS), "app/web": script("echo web")}
        pointer = publish(store, server, configs)
        digests = {name: store.put_json_blob(body) for name, body in configs.items()}
        if db_status is None:
            continue
        failed = db_status == "FAILED"
        deployments = {
            "app/db": run(
                "app/db",
                digests["app/db"],
                db_status,
                stdout=f"connecting as admin with {SECRET}\n" if failed else "",
                stderr=f"error: password {SECRET} refused\n" if failed else "",
                reason=f"script exited with status 3 ({SECRET})" if failed else None,
                exit_code=3 if failed else None,
                started_ago=5.0,
            ),
            "app/web": run("app/web", digests["app/web"], "COMPLETE", exit_code=0, started_ago=60),
        }
        store.write_report(
            Report(server, pointer.generation, pointer.manifest, now_iso(), deployments)
        )
    return path, digests


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["status", *args])
    return code, capsys.readouterr().out


def test_status_shows_why_a_deployment_failed_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = fleet(tmp_path, {"web-1": "FAILED", "web-2": "COMPLETE"})
    code, out = status(capsys, "--store", str(path))
    assert code == OK
    assert SECRET not in out
    assert "web-1 app/db: FAILED, CREATE, exit 3" in out
    assert f"  reason: script exited with status 3 ({MASK})" in out
    assert f"    connecting as admin with {MASK}" in out
    assert f"    error: password {MASK} refused" in out
    assert "web-2 app/db" not in out  # nothing to explain there

    code, out = status(capsys, "--store", str(path), "--json")
    assert SECRET not in out
    servers = {s["server"]: s for s in json.loads(out)["servers"]}
    db = next(d for d in servers["web-1"]["deployments"] if d["name"] == "app/db")
    assert (db["exit_code"], db["stderr_tail"]) == (3, f"error: password {MASK} refused\n")


def test_status_masks_the_reason_the_ledger_keeps_for_a_quarantine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The controller quarantines a digest with the reason the agent reported,
    as an agent that does not mask wrote it; status shows that reason masked."""
    path, digests = fleet(tmp_path, {"web-1": "FAILED"})
    ledger = Ledger()
    ledger.quarantine_add("app/db", "web-1", digests["app/db"], f"exited 3 ({SECRET})")
    ledger.rollouts["app/db"] = Rollout(
        "app/db",
        "c0ffee",
        targets={"web-1": digests["app/db"]},
        progress={"batch": 1, "batches": 1, "failed": {"web-1": f"exited 3 ({SECRET})"}},
    )
    write_ledger(LocalStore(path), ledger)
    code, out = status(capsys, "--store", str(path))
    assert code == OK
    assert f"quarantined: app/db on web-1: {short(digests['app/db'])} (exited 3 ({MASK}))" in out
    assert SECRET not in out

    code, out = status(capsys, "--store", str(path), "--json")
    assert SECRET not in out
    held = json.loads(out)["quarantine"]["app/db"]["web-1"]
    assert held["reason"] == f"exited 3 ({MASK})"
    assert json.loads(out)["rollouts"]["app/db"]["progress"]["failed"] == {
        "web-1": f"exited 3 ({MASK})"
    }


def test_status_reads_a_manifest_many_servers_share_once(tmp_path: Path) -> None:
    """Pointer, report and manifest per server, except that a group given one
    manifest costs one read of it, not one per server."""
    path, _ = fleet(tmp_path, {f"web-{i}": "COMPLETE" for i in range(1, 6)})
    store = LocalStore(path)
    statuses = fleet_status(store)
    assert [len(s.deployments) for s in statuses] == [2] * 5
    # 5 pointers, 5 reports, the ledger, the one manifest and the config blobs
    # the masker reads (none: nothing failed or runs).
    assert store.stats.requests["get"] == 5 + 5 + 1 + 1


def test_status_shows_a_running_deployment_and_its_output_so_far(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = fleet(tmp_path, {"web-1": "IN_PROGRESS"})
    code, out = status(capsys, "--store", str(path))
    assert code == OK
    assert "web-1 app/db: IN_PROGRESS, CREATE" in out


def test_status_withholds_the_tails_when_the_config_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, digests = fleet(tmp_path, {"web-1": "FAILED"})
    hexdigest = digests["app/db"].split(":", 1)[1]
    (path / "blobs" / hexdigest[:2] / hexdigest[2:]).unlink()
    code, out = status(capsys, "--store", str(path))
    assert code == OK
    assert SECRET not in out
    assert "output withheld: derived config" in out


def test_status_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = fleet(tmp_path, {"web-1": "FAILED", "web-2": "COMPLETE", "web-3": "COMPLETE"})
    _, out = status(capsys, "--store", str(path), "--server", "web-2")
    rows = out.splitlines()[1:]
    assert rows
    assert all(r.startswith("web-2") for r in rows if r.strip())

    _, out = status(capsys, "--store", str(path), "--deployment", "web")
    cells = [r.split() for r in out.splitlines()[1:] if r.strip()]
    assert {(r[0], r[1]) for r in cells} == {
        ("web-1", "app/web"),
        ("web-2", "app/web"),
        ("web-3", "app/web"),
    }

    _, out = status(capsys, "--store", str(path), "--failed", "--json")
    shown = {(s["server"], d["name"]) for s in json.loads(out)["servers"] for d in s["deployments"]}
    assert shown == {("web-1", "app/db")}

    code = main(["status", "--store", str(path), "--server", "nowhere"])
    assert code == FAILED
    assert "no server 'nowhere'" in capsys.readouterr().err


def test_status_exit_code_says_whether_anything_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = fleet(tmp_path, {"web-1": "FAILED", "web-2": "COMPLETE"})
    assert status(capsys, "--store", str(path))[0] == OK
    assert status(capsys, "--store", str(path), "--exit-code")[0] == FAILED
    assert status(capsys, "--store", str(path), "--exit-code", "--server", "web-2")[0] == OK


def test_status_exit_code_counts_an_unreachable_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = fleet(tmp_path, {"web-1": "COMPLETE"})
    store = LocalStore(path)
    report = store.read_report("web-1")
    assert report is not None
    from dataclasses import replace

    store.write_report(replace(report, heartbeat=60.0, updated_at=now_iso(3600)))
    code, out = status(capsys, "--store", str(path), "--exit-code")
    assert code == FAILED
    assert "UNREACHABLE" in out


def test_status_says_never_reported_for_a_server_without_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = fleet(tmp_path, {"web-1": "COMPLETE", "web-2": None})
    _, out = status(capsys, "--store", str(path))
    assert any(r.startswith("web-2") and "NEVER REPORTED" in r for r in out.splitlines()), out


def test_status_of_a_store_path_that_does_not_exist_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--store", str(tmp_path / "typo")]) == UNAVAILABLE
    captured = capsys.readouterr()
    assert "no store at" in captured.err
    assert "no servers" not in captured.out
    assert not (tmp_path / "typo").exists()


def test_status_piped_into_head_exits_quietly(tmp_path: Path) -> None:
    path, _ = fleet(tmp_path, {f"web-{i}": "FAILED" for i in range(200)})
    result = subprocess.run(
        f"{sys.executable} -m setpoint.controller.cli status --store {path} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.stdout.startswith("SERVER")
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr


def logs(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["logs", *args])
    return code, capsys.readouterr().out


def test_logs_shows_the_last_runs_newest_first_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, digests = fleet(tmp_path, {"web-1": "FAILED"})
    code, out = logs(capsys, "web-1", "--store", str(path), "--json")
    assert code == OK
    assert SECRET not in out
    doc: dict[str, Any] = json.loads(out)
    assert [r["deployment"] for r in doc["runs"]] == ["app/db", "app/web"]
    db = doc["runs"][0]
    assert (db["action"], db["config"], db["exit_code"]) == ("CREATE", digests["app/db"], 3)
    assert db["duration_seconds"] == pytest.approx(2.5, abs=0.01)
    assert db["stdout_tail"] == f"connecting as admin with {MASK}\n"

    code, out = logs(capsys, "web-1", "app/web", "--store", str(path))
    assert code == OK
    assert "app/web  CREATE  COMPLETE  config " in out
    assert "app/db" not in out

    code, out = logs(capsys, "web-1", "--store", str(path))
    assert SECRET not in out
    assert out.index("app/db") < out.index("app/web")
    assert f"    error: password {MASK} refused" in out


def test_logs_of_a_server_without_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = fleet(tmp_path, {"web-1": None})
    assert main(["logs", "web-1", "--store", str(path)]) == FAILED
    assert "has no report" in capsys.readouterr().err
    assert main(["logs", "web-1", "--store", str(tmp_path / "typo")]) == UNAVAILABLE


def test_logs_help_says_only_the_last_run_is_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "logs", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "keeps only the last run of each deployment" in " ".join(result.stdout.split())


def test_status_shows_the_last_lines_of_a_long_stream_and_says_how_many_it_left_out() -> None:
    from setpoint.controller.converge.runs import tail_lines

    text = "".join(f"line {n}\n" for n in range(1, 26))
    assert tail_lines(text, 10) == ["... (15 earlier lines)", *[f"line {n}" for n in range(16, 26)]]
    assert tail_lines(text, None) == [f"line {n}" for n in range(1, 26)]
