"""Two agents with the same server name are found out and reported, both of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agenttest import SERVER, Clock, Publisher, script
from structlog.testing import capture_logs

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.reporting import DEFAULT_HEARTBEAT, DUPLICATE_CLEAR_BEATS
from setpoint.store import PermissionDenied, Report
from setpoint.store.memory import MemoryStore


def current(store: MemoryStore) -> Report:
    report = store.read_report(SERVER)
    assert report is not None
    return report


def twin(store: MemoryStore, clock: Clock, tmp_path: Path) -> Agent:
    """A second agent for the same server name, on another machine (state dir)."""
    return Agent(store, SERVER, tmp_path / "other-state", clock=clock, sleep=clock.sleep)


def test_two_agents_with_one_server_name_both_report_the_conflict(
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    clock: Clock,
    tmp_path: Path,
) -> None:
    publisher.publish({"app/web": script("true")})
    first = make_agent()
    second = twin(store, clock, tmp_path)
    assert first.report().instance != second.report().instance
    first.run_once()
    assert current(store).instance == first.report().instance
    second.run_once()
    assert current(store).conflict is None  # a new agent cannot tell a restart from a twin

    clock.advance(DEFAULT_HEARTBEAT)
    with capture_logs() as logs:
        first.run_once()
    errors = [e for e in logs if e["event"] == "duplicate_agent"]
    assert [(e["log_level"], e["other"]) for e in errors] == [("error", second.report().instance)]
    report = current(store)
    assert report.instance == first.report().instance
    other = second.report().instance
    assert report.conflict is not None
    assert other is not None
    assert other in report.conflict

    clock.advance(DEFAULT_HEARTBEAT)
    with capture_logs() as logs:
        second.run_once()
    assert [e["other"] for e in logs if e["event"] == "duplicate_agent"] == [
        first.report().instance
    ]
    report = current(store)
    other = first.report().instance
    assert report.conflict is not None
    assert other is not None
    assert other in report.conflict


def test_the_conflict_clears_once_the_other_agent_is_gone(
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    clock: Clock,
    tmp_path: Path,
) -> None:
    publisher.publish({"app/web": script("true")})
    first = make_agent()
    first.run_once()
    twin(store, clock, tmp_path).run_once()
    clock.advance(DEFAULT_HEARTBEAT)
    first.run_once()
    assert current(store).conflict is not None
    for _ in range(DUPLICATE_CLEAR_BEATS):
        clock.advance(DEFAULT_HEARTBEAT)
        first.run_once()
    assert current(store).conflict is None


def test_a_restarted_agent_is_not_a_duplicate(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], clock: Clock
) -> None:
    publisher.publish({"app/web": script("true")})
    make_agent().run_once()
    restarted = make_agent()
    with capture_logs() as logs:
        for _ in range(3):
            restarted.run_once()
            clock.advance(DEFAULT_HEARTBEAT)
    assert "duplicate_agent" not in [e["event"] for e in logs]
    report = current(store)
    assert (report.instance, report.conflict) == (restarted.report().instance, None)


def test_reports_without_instance_or_conflict_still_parse() -> None:
    doc = {"server": SERVER, "generation": 1, "manifest": None, "updated_at": "x"}
    report = Report.from_dict({**doc, "deployments": {}})
    assert (report.instance, report.conflict) == (None, None)
    assert "instance" not in report.to_dict()
    assert "conflict" not in report.to_dict()
    both = Report.from_dict({**doc, "deployments": {}, "instance": "ab", "conflict": "two"})
    assert Report.from_dict(both.to_dict()) == both


class WriteOnlyReports(MemoryStore):
    """A store where the agent may write its report but not read it (capability URLs)."""

    def __init__(self) -> None:
        super().__init__("write-only-reports")
        self.report_reads = 0

    def read_report(self, server: str) -> Report | None:
        self.report_reads += 1
        raise PermissionDenied(f"agents/{server}/report", "this agent holds no URL that reads it")


def test_an_agent_that_cannot_read_its_report_back_still_reports(
    tmp_path: Path, clock: Clock
) -> None:
    store = WriteOnlyReports()
    Publisher(store).publish({"app/web": script("true")})
    agent = Agent(store, SERVER, tmp_path / "state", clock=clock, sleep=clock.sleep)
    with capture_logs() as logs:
        for _ in range(3):
            result = agent.run_once()
            clock.advance(DEFAULT_HEARTBEAT)
    assert result.store_error is None
    assert store.report_reads == 1
    assert [e["log_level"] for e in logs if e["event"].startswith("duplicate")] == ["info"]
    report = store.read_agent_object(SERVER, "report")
    assert report is not None
    assert agent.report().instance is not None
