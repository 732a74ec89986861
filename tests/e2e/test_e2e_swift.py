"""The whole story on a real OpenStack Swift, with agents holding only URLs.

Twice: through the Swift API with agents on TempURLs, and through the S3 API
(Swift's s3api) with agents on presigned URLs. Agents are real processes; the
controller holds the credentials, the agents hold their bootstrap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.cli.demo import EXAMPLE, run_demo
from setpoint.controller.cli.main import main
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler, wait_for_convergence
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.controller.fleet.enroll import bootstrap_for
from setpoint.controller.fleet.rotate import rotate_temp_url_key
from setpoint.store.documents import Report
from setpoint.store.signing import SigningKey
from setpoint.store.url import open_store

pytestmark = pytest.mark.e2e


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def story(tmp_path: Path, store_url: str) -> str:
    lines: list[str] = []
    code = run_demo(
        workdir=str(tmp_path / "demo"), timeout=90, say=lines.append, store_url=store_url
    )
    text = "\n".join(lines)
    assert code == 0, text
    return text


def test_story_on_swift_with_tempurl_agents(tmp_path: Path, swift_env: Any) -> None:
    text = story(tmp_path, f"swift://{unique('demo')}")
    assert "ok: the revert stored 0 new blobs" in text
    assert "ok: DELETE web/metrics on web-1" in text
    boot = json.loads((tmp_path / "demo/agents/web-1.bootstrap.json").read_text())
    assert boot["store"] is None
    assert boot["capabilities"]["kind"] == "swift"
    assert "temp_url_sig=" in boot["capabilities"]["pointer"]


def test_story_on_swift_s3api_with_presigned_agents(tmp_path: Path, swift_env: Any) -> None:
    url = f"s3://{unique('demo')}?endpoint={swift_env.s3_endpoint}"
    text = story(tmp_path, url)
    assert "ok: the revert stored 0 new blobs" in text
    boot = json.loads((tmp_path / "demo/agents/db-1.bootstrap.json").read_text())
    assert boot["capabilities"]["kind"] == "s3"
    assert "X-Amz-Signature=" in boot["capabilities"]["pointer"]


def _status(method: str, url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_a_bootstrap_reaches_only_its_own_server(tmp_path: Path, swift_env: Any) -> None:
    store = open_store(f"swift://{unique('iso')}")
    store.set_temp_url_key(1, "isolation-secret")  # type: ignore[attr-defined]
    key = SigningKey.generate("ctl")
    trust = PointerPolicy(key).trust() or {}
    for server in ("s1", "s2"):
        store.write_report(  # something to read and overwrite
            Report(server, 1, None, "x")
        )
    s1 = bootstrap_for(store, "s1", trust).capabilities
    assert s1 is not None
    own_report = s1.report
    # Its own report: writable; its pointer URL works for its own pointer only.
    assert _status("PUT", own_report, b"{}") == 201
    assert _status("PUT", own_report.replace("/agents/s1/", "/agents/s2/"), b"{}") == 401
    assert _status("GET", s1.pointer.replace("/agents/s1/", "/agents/s2/")) == 401
    # The blob prefix URL reads blobs/ only, never another server's documents.
    assert s1.blob_prefix is not None
    digest = store.put_blob(b"shared blob")
    hexd = digest.removeprefix("blake3:")
    assert _status("GET", f"{s1.blob_prefix}blobs/{hexd[:2]}/{hexd[2:]}?{s1.blob_query}") == 200
    for other in ("agents/s2/pointer", "agents/s2/report", "agents/s1/report"):
        assert _status("GET", f"{s1.blob_prefix}{other}?{s1.blob_query}") == 401
    assert _status("PUT", f"{s1.blob_prefix}blobs/zz/evil?{s1.blob_query}", b"x") == 401


def start_agent(tmp_path: Path, boot_file: Path) -> subprocess.Popen[bytes]:
    with (tmp_path / "agent.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "setpoint.agentshim", "--bootstrap", str(boot_file),
             "--state-dir", str(tmp_path / "state"), "--interval", "0.3"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip


def backend_only_repo(tmp_path: Path) -> Path:
    """The example with only the backend (on db-1), so one agent converges it."""
    repo_dir = tmp_path / "repo"
    init_repo_from_dir(EXAMPLE, repo_dir, "deploy")
    stack = repo_dir / "stacks/web.yaml"
    text = stack.read_text()
    stack.write_text(text[: text.index("  frontend:")])
    commit_all(repo_dir, "db-1 only")
    return repo_dir


def bump_backend(repo_dir: Path, version: str) -> None:
    stack = repo_dir / "stacks/web.yaml"
    text = stack.read_text()
    start = text.index('default: "') + len('default: "')
    stack.write_text(text[:start] + version + text[text.index('"', start) :])
    commit_all(repo_dir, f"backend {version}")


def test_temp_url_key_rotation_keeps_running_agents(
    tmp_path: Path, swift_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    repo_dir = backend_only_repo(tmp_path)
    url = f"swift://{unique('rotate')}"
    store = open_store(url)
    store.set_temp_url_key(1, "old-secret")  # type: ignore[attr-defined]
    key = SigningKey.generate("ctl")
    key.save(tmp_path / "ctl.key")
    enroll = ["enroll", "db-1", "--repo", str(repo_dir), "--store", url]
    assert main([*enroll, "--signing-key", str(tmp_path / "ctl.key")]) == 0
    boot_file = tmp_path / "db-1.json"
    boot_file.write_text(capsys.readouterr().out)
    old_pointer_url = json.loads(boot_file.read_text())["capabilities"]["pointer"]
    agent = start_agent(tmp_path, boot_file)
    try:
        with GitRepo.open(repo_dir) as repo:
            reconciler = Reconciler(repo, store, policy=PointerPolicy(key))
            assert wait_for_convergence(reconciler, 60, 0.3, lambda _o: None)[0] == 0
            result = rotate_temp_url_key(reconciler, timeout=60, interval=0.3)
            assert result.retired_old_key
            assert result.behind == []
            keys = store.temp_url_keys()  # type: ignore[attr-defined]
            assert keys[0] not in (None, "old-secret")
            assert keys[1] is None
            assert _status("GET", old_pointer_url) == 401  # the old URLs are dead
            bump_backend(repo_dir, "3.0.0")
            code, outcome = wait_for_convergence(reconciler, 60, 0.3, lambda _o: None)
            assert code == 0, outcome.summary()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_urls_are_renewed_through_the_pointer_before_they_expire(
    tmp_path: Path, swift_env: Any
) -> None:
    """With URLs that live 8 s, an agent that keeps polling keeps working past them."""
    repo_dir = backend_only_repo(tmp_path)
    store = open_store(f"swift://{unique('renew')}")
    store.set_temp_url_key(1, "renewal-secret")  # type: ignore[attr-defined]
    policy = PointerPolicy(SigningKey.generate("ctl"), ttl=8)
    boot = bootstrap_for(store, "db-1", policy.trust() or {}, ttl=8)
    boot_file = tmp_path / "db-1.json"
    boot_file.write_text(json.dumps(boot.to_dict()))
    agent = start_agent(tmp_path, boot_file)
    try:
        started = time.time()
        with GitRepo.open(repo_dir) as repo:
            reconciler = Reconciler(repo, store, policy=policy)
            code, _ = wait_for_convergence(reconciler, 60, 0.3, lambda _o: None)
            assert code == 0
            first = store.read_pointer("db-1")
            assert first is not None
            time.sleep(max(0.0, started + 5 - time.time()))  # past half of 8 s
            renewed = reconciler.run_pass()
            assert renewed.published.changed == ["db-1"]  # renewal only: same manifest
            second = store.read_pointer("db-1")
            assert second is not None
            assert second.manifest == first.manifest
            assert second.capabilities != first.capabilities
            time.sleep(max(0.0, started + 10 - time.time()))  # the bootstrap URLs are dead
            assert _status("GET", boot.capabilities.pointer) == 401  # type: ignore[union-attr]
            bump_backend(repo_dir, "1.0.1")
            code, outcome = wait_for_convergence(reconciler, 60, 0.3, lambda _o: None)
            assert code == 0, outcome.summary()
            third = store.read_pointer("db-1")
            report = store.read_report("db-1")
            assert third is not None
            assert report is not None
            assert third.manifest != first.manifest
            assert report.generation == third.generation
            assert report.deployments["web/backend"].action == "UPDATE"
    finally:
        agent.terminate()
        agent.wait(timeout=10)
