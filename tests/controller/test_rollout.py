"""Rolling updates on a simulated fleet: batches, pause, canary, halt, rollback,
quarantine and timeouts, checked at every instant with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.converge.status import fleet_status, format_rollouts
from setpoint.controller.rollout.ledger import lift_quarantine, read_ledger, write_ledger
from setpoint.store.local import LocalStore
from tests.controller.fleet import Fleet, component, inventory

SERVERS = [f"app-{i:02d}" for i in range(1, 25)]


def stack(version: str, policy: str = "", extra: str = "") -> str:
    return f"""\
kind: Stack
deployments:
  app:
    component: app
    servers: {{group: apps}}
    input_values:
      version: "{version}"
{policy}{extra}"""


def make_fleet(tmp_path: Path, policy: str = "", extra: str = "", timeout: int = 60) -> Fleet:
    return Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"apps": SERVERS}),
            "components/app/component.yaml": component(timeout=timeout),
            "stacks/s.yaml": stack("1", policy, extra),
        },
    )


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = make_fleet(
        tmp_path,
        "    update_policy: {max_batch_size: 5, min_in_service: 18, pause_time: 30}\n",
    )
    yield f
    f.close()


def converge(fleet: Fleet, limit: int = 60, advance: float = 1.0) -> int:
    for n in range(1, limit + 1):
        outcome = fleet.step(advance)
        if outcome.converged:
            return n
    raise AssertionError(f"not converged after {limit} steps: {outcome.summary()}")


def changing(fleet: Fleet, version: str) -> list[str]:
    """Servers given ``version`` that have not yet reported it COMPLETE."""
    out = []
    for server in SERVERS:
        if fleet.version(server, "s/app") != version:
            continue
        entry = fleet.entry(server, "s/app")
        report = fleet.store.read_report(server)
        got = report.deployments.get(entry.name) if report and entry else None
        if got is None or entry is None or (got.config, got.status) != (entry.config, "COMPLETE"):
            out.append(server)
    return out


def test_batches_and_min_in_service_hold_at_every_instant(fleet: Fleet) -> None:
    converge(fleet)  # creation: all at once (no batch_create)
    fleet.commit({"stacks/s.yaml": stack("2", "    update_policy: {max_batch_size: 5, "
                  "min_in_service: 18, pause_time: 30}\n")})  # fmt: skip
    batches: list[list[str]] = []
    for _ in range(200):
        outcome = fleet.run_pass()
        now_changing = changing(fleet, "2")
        # Never more than a batch out of service, never fewer than 18 in service.
        assert len(now_changing) <= 5
        assert len(SERVERS) - len(now_changing) >= 18
        if now_changing and (not batches or set(now_changing) != set(batches[-1])):
            batches.append(sorted(now_changing))
        if outcome.converged:
            break
        fleet.agents_cycle()
        fleet.now += 5
    assert outcome.converged
    assert all(fleet.version(s, "s/app") == "2" for s in SERVERS)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 4]
    assert sorted(s for b in batches for s in b) == SERVERS


def test_pause_time_separates_batches(fleet: Fleet) -> None:
    converge(fleet)
    fleet.commit({"stacks/s.yaml": stack("2", "    update_policy: {max_batch_size: 12, "
                  "pause_time: 30}\n")})  # fmt: skip
    first = fleet.run_pass()
    assert first.rollouts["s/app"]["progress"]["batch"] == 1
    fleet.agents_cycle()
    done_at = fleet.now
    for advance in (0, 10, 19):
        fleet.now = done_at + advance
        outcome = fleet.run_pass()
        assert [fleet.version(s, "s/app") for s in SERVERS].count("2") == 12
        assert any("pause_time" in w.reason for w in outcome.waiting)
    fleet.now = done_at + 31
    fleet.run_pass()
    assert [fleet.version(s, "s/app") for s in SERVERS].count("2") == 24
    table = format_rollouts(fleet.store)
    assert "s/app: batch 2 of 2" in table


def test_canary_failure_stops_the_rollout(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, "    update_policy: {max_batch_size: 10, canary: 1}\n")
    try:
        converge(fleet)
        for server in SERVERS:
            fleet.agent(server).fail_versions = {"2"}
        fleet.commit(
            {"stacks/s.yaml": stack("2", "    update_policy: {max_batch_size: 10, canary: 1}\n")}
        )
        for _ in range(5):
            outcome = fleet.step()
        assert [fleet.version(s, "s/app") for s in SERVERS].count("2") == 1
        assert fleet.version(SERVERS[0], "s/app") == "2"
        assert outcome.failed[0].startswith("s/app: failed on app-01")
        assert "halted" in outcome.failed[0]
        # Every other server still runs what succeeded on it.
        for server in SERVERS[1:]:
            entry = fleet.entry(server, "s/app")
            assert entry is not None
            assert fleet.agent(server).succeeded["s/app"] == entry.config
    finally:
        fleet.close()


def test_halt_leaves_done_batches_and_quarantines_the_failed_digest(fleet: Fleet) -> None:
    converge(fleet)
    for server in SERVERS[5:10]:  # the second batch fails
        fleet.agent(server).fail_versions = {"2"}
    fleet.commit({"stacks/s.yaml": stack("2", "    update_policy: {max_batch_size: 5, "
                  "min_in_service: 18}\n")})  # fmt: skip
    for _ in range(10):
        outcome = fleet.step()
    versions = [fleet.version(s, "s/app") for s in SERVERS]
    assert versions == ["2"] * 10 + ["1"] * 14
    assert "rollout halted" in outcome.failed[0]
    ledger = read_ledger(fleet.store)
    assert sorted(ledger.quarantine["s/app"]) == SERVERS[5:10]
    # Quarantine: further passes publish nothing and the agents run nothing new.
    ran = {s: len(fleet.agent(s).ran) for s in SERVERS}
    fleet.store.stats.reset()
    for _ in range(3):
        outcome = fleet.step()
        assert outcome.published.changed == []
    assert fleet.store.stats.requests["put"] == 24 * 3  # only the simulated agents' reports
    assert {s: len(fleet.agent(s).ran) for s in SERVERS} == ran
    # Every server that did not fail runs a digest that succeeded on it.
    for server in SERVERS[:5] + SERVERS[10:]:
        entry = fleet.entry(server, "s/app")
        assert entry is not None
        assert fleet.agent(server).succeeded["s/app"] == entry.config


def test_retry_lifts_the_quarantine(fleet: Fleet) -> None:
    converge(fleet)
    fleet.agent(SERVERS[0]).fail_versions = {"2"}
    policy = "    update_policy: {max_batch_size: 5, min_in_service: 18}\n"
    fleet.commit({"stacks/s.yaml": stack("2", policy)})
    for _ in range(4):
        fleet.step()
    assert read_ledger(fleet.store).quarantined("s/app", SERVERS[0]) is not None
    for _ in range(2):
        assert fleet.step().published.changed == []
    fleet.agent(SERVERS[0]).fail_versions = set()  # an operator fixed the server
    assert lift_quarantine(fleet.store, "s/app", SERVERS[0]) == [SERVERS[0]]
    assert lift_quarantine(fleet.store, "s/app", SERVERS[0]) == []
    converge(fleet, advance=5)
    assert all(fleet.version(s, "s/app") == "2" for s in SERVERS)


def test_retry_command_on_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = LocalStore(tmp_path / "store")
    ledger = read_ledger(store)
    ledger.quarantine_add("s/app", "app-01", "blake3:" + "1" * 64, "failed")
    ledger.quarantine_add("s/app", "app-02", "blake3:" + "2" * 64, "failed")
    write_ledger(store, ledger)
    assert main(["retry", "s/app", "--server", "app-01", "--store", str(tmp_path / "store")]) == 0
    assert "lifted the quarantine of s/app on app-01" in capsys.readouterr().out
    assert sorted(read_ledger(store).quarantine["s/app"]) == ["app-02"]
    assert main(["retry", "s/app", "--store", str(tmp_path / "store")]) == 0
    assert read_ledger(store).quarantine == {}
    assert main(["retry", "s/app", "--store", str(tmp_path / "store")]) == 1
    assert "nothing quarantined" in capsys.readouterr().err


def test_a_commit_with_another_digest_lifts_the_quarantine(fleet: Fleet) -> None:
    converge(fleet)
    fleet.agent(SERVERS[0]).fail_versions = {"2"}
    policy = "    update_policy: {max_batch_size: 5, min_in_service: 18}\n"
    fleet.commit({"stacks/s.yaml": stack("2", policy)})
    for _ in range(4):
        fleet.step()
    fleet.commit({"stacks/s.yaml": stack("3", policy)})
    converge(fleet, advance=5)
    assert all(fleet.version(s, "s/app") == "3" for s in SERVERS)
    assert read_ledger(fleet.store).quarantine == {}


def test_rollback_returns_failed_and_done_batches_to_their_last_good_digest(
    tmp_path: Path,
) -> None:
    policy = "    update_policy: {max_batch_size: 6}\n    on_failure: rollback\n"
    fleet = make_fleet(tmp_path, policy)
    try:
        converge(fleet)
        good = {s: fleet.entry(s, "s/app") for s in SERVERS}
        generations = {s: fleet.store.read_pointer(s).generation for s in SERVERS}  # type: ignore[union-attr]
        for server in SERVERS[12:18]:  # the third batch fails
            fleet.agent(server).fail_versions = {"2"}
        fleet.commit({"stacks/s.yaml": stack("2", policy)})
        for _ in range(12):
            outcome = fleet.step()
        assert any("rolled back" in f for f in outcome.failed)
        for server in SERVERS:
            assert fleet.entry(server, "s/app") == good[server], server
            # A digest that succeeded there, and the agent runs it.
            assert fleet.agent(server).succeeded["s/app"] == good[server].config  # type: ignore[union-attr]
        for server in SERVERS[:18]:
            pointer = fleet.store.read_pointer(server)
            assert pointer is not None
            assert pointer.generation > generations[server] + 1
        for server in SERVERS[18:]:  # never reached: untouched
            assert fleet.store.read_pointer(server).generation == generations[server]  # type: ignore[union-attr]
        assert read_ledger(fleet.store).rollouts["s/app"].outcome == "rolled_back"
        assert "rolled back" in format_rollouts(fleet.store)
        # Stable: no flapping on later passes.
        for _ in range(3):
            assert fleet.step().published.changed == []
    finally:
        fleet.close()


def test_timeout_fails_a_server_whose_agent_never_reports(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, "    update_policy: {max_batch_size: 4}\n", timeout=120)
    try:
        converge(fleet)
        fleet.agent(SERVERS[1]).silent = True
        fleet.commit({"stacks/s.yaml": stack("2", "    update_policy: {max_batch_size: 4}\n")})
        for _ in range(5):
            outcome = fleet.step(advance=10)
        assert outcome.failed == []  # within the timeout: still in progress
        assert [fleet.version(s, "s/app") for s in SERVERS].count("2") == 4
        fleet.now += 120
        outcome = fleet.step()
        assert outcome.failed == ["s/app: failed on app-02 (timeout: no result within 120s); "
                                  "rollout halted"]  # fmt: skip
        statuses = {s.server: s for s in fleet_status(fleet.store, now=fleet.now)}
        app02 = statuses["app-02"].deployments[0]
        assert app02.status == "FAILED (timeout)"
    finally:
        fleet.close()


def test_batch_create_rolls_out_first_creation(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, "    batch_create: {max_batch_size: 8}\n")
    try:
        created: list[int] = []
        for _ in range(10):
            outcome = fleet.step()
            created.append(sum(fleet.entry(s, "s/app") is not None for s in SERVERS))
            if outcome.converged:
                break
        assert outcome.converged
        assert created[:3] == [8, 16, 24]
    finally:
        fleet.close()


def test_idle_pass_after_a_rollout_writes_nothing(fleet: Fleet) -> None:
    converge(fleet)
    fleet.commit({"stacks/s.yaml": stack("2", "    update_policy: {max_batch_size: 12}\n")})
    converge(fleet, advance=5)
    assert read_ledger(fleet.store).rollouts == {}
    fleet.store.stats.reset()
    with_repo = Reconciler(fleet.repo, fleet.store, clock=fleet.clock)
    assert with_repo.run_pass().converged
    assert fleet.store.stats.writes == 0


def test_an_unreachable_agent_counts_against_min_in_service(tmp_path: Path) -> None:
    policy = "    update_policy: {max_batch_size: 4, min_in_service: 22}\n"
    fleet = make_fleet(tmp_path, policy)
    try:
        for server in SERVERS:
            fleet.agent(server).heartbeat = 60.0
        converge(fleet)
        fleet.agent(SERVERS[-1]).silent = True  # stops reporting, heartbeat included
        fleet.now += 200  # more than three beats
        for server in SERVERS[:-1]:
            fleet.agent(server).write()  # the others beat
        statuses = {s.server: s.agent for s in fleet_status(fleet.store, now=fleet.now)}
        assert statuses[SERVERS[-1]] == "unreachable"
        assert statuses[SERVERS[0]] == "current"
        fleet.commit({"stacks/s.yaml": stack("2", policy)})
        outcome = fleet.run_pass()
        # 23 in service; one server may change without going below 22.
        assert [fleet.version(s, "s/app") for s in SERVERS].count("2") == 1
        assert any("min_in_service 22: only 22 in service" in w.reason for w in outcome.waiting)
        assert SERVERS[-1] in {w.server for w in outcome.waiting}
    finally:
        fleet.close()


def test_the_unreachable_threshold_is_configurable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = "    update_policy: {max_batch_size: 4, min_in_service: 22}\n"
    fleet = make_fleet(tmp_path, policy)
    try:
        for server in SERVERS:
            fleet.agent(server).heartbeat = 60.0
        converge(fleet)
        fleet.agent(SERVERS[-1]).silent = True
        fleet.now += 200  # more than three beats, fewer than five
        for server in SERVERS[:-1]:
            fleet.agent(server).write()
        statuses = {s.server: s.agent for s in fleet_status(fleet.store, now=fleet.now)}
        assert statuses[SERVERS[-1]] == "unreachable"
        patient = {
            s.server: s.agent for s in fleet_status(fleet.store, now=fleet.now, unreachable_after=5)
        }
        assert patient[SERVERS[-1]] == "current"
        # setpoint reconcile/watch --unreachable-after 5: still in service, so a
        # batch of two fits above min_in_service 22.
        fleet.reconciler.unreachable_after = 5
        fleet.commit({"stacks/s.yaml": stack("2", policy)})
        outcome = fleet.run_pass()
        assert [fleet.version(s, "s/app") for s in SERVERS].count("2") == 2
        assert any("min_in_service 22: only 22 in service" in w.reason for w in outcome.waiting)
    finally:
        fleet.close()
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--store", str(tmp_path / "x"), "--unreachable-after", "0"])
    assert exit_info.value.code == 64
    assert "must be positive" in capsys.readouterr().err
