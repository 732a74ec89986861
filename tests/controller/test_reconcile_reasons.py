"""An agent's failure reason reaches the ledger, the pass's outcome and the git
notes masked: a report is written by the server, and one from an agent that
does not mask carries a secret input's value in cleartext."""

from __future__ import annotations

import subprocess
from pathlib import Path

from setpoint.controller.gitops.history import deployed_history
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.store.local import LocalStore
from setpoint.store.masking import MASK
from tests.dashboard.dashfleet import SECRET, build_fleet


def test_a_reported_secret_is_masked_in_the_ledger_and_the_notes(tmp_path: Path) -> None:
    fleet = build_fleet(tmp_path)
    store = LocalStore(fleet.store)
    ledger = read_ledger(store)
    assert ledger.quarantine["shop/db"]["db-02"].reason == (
        f"script exited with status 3 (password {MASK})"
    )
    assert SECRET not in (fleet.store / "controller" / "ledger").read_text()
    records = [d.record for d in deployed_history(str(fleet.repo), "HEAD", "default")]
    failures = [f for r in records for f in r.failures]
    assert failures
    assert all(SECRET not in f for f in failures)
    assert any(f"(password {MASK})" in f for f in failures)
    notes = subprocess.run(
        ["git", "-C", str(fleet.repo), "log", "--notes=setpoint", "--format=%N"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "failed on db-02" in notes
    assert SECRET not in notes
