"""``setpoint move`` from OpenStack Swift (TempURL agents) to the S3 API (Swift's
s3api, presigned URLs), with the agent as a real process that is never restarted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler, wait_for_convergence
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.fleet.enroll import bootstrap_for
from setpoint.controller.fleet.move import move_fleet, move_status
from setpoint.store.signing import SigningKey
from setpoint.store.url import open_store
from tests.e2e.test_e2e_swift import backend_only_repo, bump_backend, start_agent, unique

pytestmark = pytest.mark.e2e


def test_fleet_moves_from_swift_to_s3_and_converges_there(tmp_path: Path, swift_env: Any) -> None:
    repo_dir = backend_only_repo(tmp_path)
    swift = open_store(f"swift://{unique('from')}")
    swift.set_temp_url_key(1, "move-secret")  # type: ignore[attr-defined]
    s3 = open_store(f"s3://{unique('to')}?endpoint={swift_env.s3_endpoint}")
    policy = PointerPolicy(SigningKey.generate("ctl"))
    boot_file = tmp_path / "db-1.json"
    boot_file.write_text(json.dumps(bootstrap_for(swift, "db-1", policy.trust() or {}).to_dict()))
    agent = start_agent(tmp_path, boot_file)
    try:
        with GitRepo.open(repo_dir) as repo:
            code, _ = wait_for_convergence(
                Reconciler(repo, swift, policy=policy), 60, 0.3, lambda _o: None
            )
            assert code == 0

            result = move_fleet(swift, s3, policy, deadline=60)
            redirect = swift.read_pointer("db-1")
            assert redirect is not None
            assert redirect.moved_to is not None
            assert redirect.moved_to["capabilities"]["kind"] == "s3"
            deadline = time.monotonic() + 60  # a hang guard
            while time.monotonic() < deadline:
                moved = move_status(s3)
                if moved is not None and moved.followed == ["db-1"]:
                    break
                time.sleep(0.3)
            else:
                raise AssertionError((tmp_path / "agent.log").read_text()[-3000:])

            bump_backend(repo_dir, "4.0.0")
            code, outcome = wait_for_convergence(
                Reconciler(repo, s3, policy=policy), 60, 0.3, lambda _o: None
            )
            assert code == 0, outcome.summary()
        report = s3.read_report("db-1")
        assert report is not None
        assert report.generation > result.servers["db-1"]
        assert agent.poll() is None
    finally:
        agent.terminate()
        agent.wait(timeout=10)
