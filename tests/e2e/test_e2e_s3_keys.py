"""Agents with their own S3 keys, limited by IAM policy to their own prefix.

moto runs as a real HTTP server with IAM enforcement on: the controller works
with an administrator's key, the agent with the key ``setpoint enroll
--s3-keys`` made for it, signing its requests with the standard library.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from setpoint.controller.cli.demo import EXAMPLE
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler, wait_for_convergence
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.controller.fleet.s3keys import grant
from setpoint.store.bootstrap import Bootstrap
from setpoint.store.documents import Report
from setpoint.store.signing import SigningKey
from setpoint.store.sigv4 import sign_s3
from setpoint.store.url import open_store

pytestmark = pytest.mark.e2e

ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@pytest.fixture
def moto_with_iam(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto on 127.0.0.1 that checks every request against IAM, and an admin key."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SETPOINT_IAM_ENDPOINT", endpoint)

    # The first three requests (making the admin) pass unchecked; all later ones
    # are authenticated and authorized against IAM.
    reset_auth(endpoint, "3")
    try:
        iam = boto3.session.Session().client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin", PolicyName="all", PolicyDocument=json.dumps(ADMIN_POLICY)
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        yield endpoint
    finally:
        reset_auth(endpoint, "inf")
        server.stop()


def reset_auth(endpoint: str, count: str) -> None:
    """moto's switch: after ``count`` more requests, check every request against IAM."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def signed_status(method: str, url: str, creds: dict[str, str], body: bytes = b"") -> int:
    headers = sign_s3(
        method, url, body, creds["access_key_id"], creds["secret_access_key"], creds["region"]
    )
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_an_agent_with_scoped_keys_converges_and_reaches_only_its_own_objects(
    tmp_path: Path, moto_with_iam: str
) -> None:
    repo_dir = tmp_path / "repo"
    init_repo_from_dir(EXAMPLE, repo_dir, "deploy")
    stack = repo_dir / "stacks/web.yaml"
    text = stack.read_text()
    stack.write_text(text[: text.index("  frontend:")])  # db-1's deployments only
    commit_all(repo_dir, "db-1 only")

    store = open_store(f"s3://fleet/pre?endpoint={moto_with_iam}")
    key = SigningKey.generate("ctl")
    policy = PointerPolicy(key)
    caps = grant(store, "db-1")
    boot = Bootstrap(server="db-1", trusted_keys=policy.trust() or {}, capabilities=caps)
    boot_file = tmp_path / "db-1.json"
    boot_file.write_text(json.dumps(boot.to_dict()))
    assert caps.credentials is not None
    creds: dict[str, Any] = caps.credentials

    with (tmp_path / "agent.log").open("w") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "setpoint.agentshim", "--bootstrap", str(boot_file),
             "--state-dir", str(tmp_path / "state"), "--interval", "0.2"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        with GitRepo.open(repo_dir) as repo:
            reconciler = Reconciler(repo, store, policy=policy)
            code, outcome = wait_for_convergence(reconciler, 60, 0.2, lambda _o: None)
            assert code == 0, outcome.summary() + (tmp_path / "agent.log").read_text()[-2000:]
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    report = store.read_report("db-1")
    assert report is not None
    assert report.deployments["web/backend"].status == "COMPLETE"

    # What the key may do, and what it may not (on objects that exist).
    store.write_report(Report("web-1", 1, None, "x"))
    root = caps.blob_prefix
    assert root is not None
    assert signed_status("GET", caps.pointer, creds) == 200
    assert signed_status("PUT", caps.report, creds, b"{}") == 200
    blob = next(iter(store.list_blobs())).removeprefix("blake3:")
    assert signed_status("GET", f"{root}blobs/{blob[:2]}/{blob[2:]}", creds) == 200
    assert signed_status("GET", f"{root}agents/web-1/report", creds) == 403
    assert signed_status("PUT", f"{root}agents/web-1/report", creds, b"{}") == 403
    assert signed_status("PUT", f"{root}blobs/00/evil", creds, b"x") == 403
    assert signed_status("PUT", caps.pointer, creds, b"{}") == 403
