"""SUSPEND and RESUME on a state change, custom actions once per run token,
and ``setpoint retry`` of a digest that failed for good."""

from __future__ import annotations

from pathlib import Path

from agenttest import SERVER, Clock, Deploy, Publisher, component

from setpoint.agentshim.agent import Agent
from setpoint.store import DeploymentReport
from setpoint.store.memory import MemoryStore

ACTIONS = ("CREATE", "UPDATE", "DELETE", "SUSPEND", "RESUME")
LOG = 'echo "$deploy_action" >> "$LOGFILE"\n'


def app(log: Path, backup_exit: int = 0) -> dict[str, object]:
    return component(
        [
            (["CREATE", "UPDATE", "DELETE", "SUSPEND", "RESUME"], "script", LOG),
            (["BACKUP"], "script", LOG + f"exit {backup_exit}\n"),
        ],
        inputs=[{"name": "LOGFILE", "type": "String", "value": str(log)}],
    )


def report(store: MemoryStore) -> DeploymentReport:
    got = store.read_report(SERVER)
    assert got is not None
    return got.deployments["s/app"]


def ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def make(tmp_path: Path) -> tuple[MemoryStore, Publisher, Agent]:
    store = MemoryStore()
    clock = Clock()
    agent = Agent(store, SERVER, tmp_path / "state", clock=clock, sleep=clock.sleep)
    return store, Publisher(store), agent


def test_suspend_and_resume_follow_the_state(tmp_path: Path) -> None:
    store, pub, agent = make(tmp_path)
    log = tmp_path / "actions.log"
    pub.publish({"s/app": Deploy(app(log), ACTIONS)})
    agent.run_once()
    pub.publish({"s/app": Deploy(app(log), ACTIONS, state="suspended")})
    agent.run_once()
    agent.run_once()  # nothing more to do
    assert ran(log) == ["CREATE", "SUSPEND"]
    got = report(store)
    assert (got.action, got.status, got.state) == ("SUSPEND", "COMPLETE", "suspended")
    pub.publish({"s/app": Deploy(app(log), ACTIONS, state="active")})
    agent.run_once()
    assert ran(log) == ["CREATE", "SUSPEND", "RESUME"]
    assert report(store).state == "active"


def test_suspend_outside_the_actions_completes_without_running(tmp_path: Path) -> None:
    store, pub, agent = make(tmp_path)
    log = tmp_path / "actions.log"
    pub.publish({"s/app": Deploy(app(log), ("CREATE", "UPDATE"), state="suspended")})
    agent.run_once()
    assert ran(log) == ["CREATE"]
    got = report(store)
    assert (got.state, got.status) == ("suspended", "COMPLETE")
    assert "not among the deployment's actions" in (got.reason or "")


def test_custom_action_runs_once_per_token(tmp_path: Path) -> None:
    store, pub, agent = make(tmp_path)
    log = tmp_path / "actions.log"
    pub.publish({"s/app": Deploy(app(log), ACTIONS, run=("BACKUP", "t1"))})
    agent.run_once()
    agent.run_once()
    pub.publish({"s/app": Deploy(app(log), ACTIONS, run=("BACKUP", "t1"), timeout=20)})
    agent.run_once()
    assert ran(log) == ["CREATE", "BACKUP"]
    got = report(store)
    assert (got.action, got.token, got.status) == ("BACKUP", "t1", "COMPLETE")
    pub.publish({"s/app": Deploy(app(log), ACTIONS, run=("BACKUP", "t2"))})
    agent.run_once()
    assert ran(log) == ["CREATE", "BACKUP", "BACKUP"]
    assert report(store).token == "t2"


def test_a_failed_custom_action_is_retried_then_final(tmp_path: Path) -> None:
    store = MemoryStore()
    clock = Clock()
    agent = Agent(store, SERVER, tmp_path / "state", clock=clock, sleep=clock.sleep, max_attempts=2)
    pub = Publisher(store)
    log = tmp_path / "actions.log"
    pub.publish({"s/app": Deploy(app(log, backup_exit=3), ACTIONS, run=("BACKUP", "t1"))})
    agent.run_once()
    clock.advance(600)
    agent.run_once()
    clock.advance(600)
    agent.run_once()
    assert ran(log) == ["CREATE", "BACKUP", "BACKUP"]
    got = report(store)
    assert (got.action, got.status, got.final) == ("BACKUP", "FAILED", True)


def test_retry_count_reruns_a_digest_that_failed_for_good(tmp_path: Path) -> None:
    store = MemoryStore()
    clock = Clock()
    agent = Agent(store, SERVER, tmp_path / "state", clock=clock, sleep=clock.sleep, max_attempts=1)
    pub = Publisher(store)
    flag = tmp_path / "fixed"
    body = component(
        [(["CREATE", "UPDATE"], "script", f'test -e "{flag}"\n')],
    )
    pub.publish({"s/app": Deploy(body)})
    agent.run_once()
    assert report(store).final
    flag.write_text("")
    agent.run_once()
    assert report(store).status == "FAILED"  # final: not tried again by itself
    pub.publish({"s/app": Deploy(body, retry=1)})
    agent.run_once()
    assert report(store).status == "COMPLETE"


def test_rolled_back_digest_runs_its_update_again(tmp_path: Path) -> None:
    store = MemoryStore()
    clock = Clock()
    agent = Agent(store, SERVER, tmp_path / "state", clock=clock, sleep=clock.sleep, max_attempts=1)
    pub = Publisher(store)
    log = tmp_path / "actions.log"
    good = app(log)
    broken = component(
        [(["CREATE", "UPDATE"], "script", LOG + "exit 4\n")],
        inputs=[{"name": "LOGFILE", "type": "String", "value": str(log)}],
    )
    pub.publish({"s/app": Deploy(good)})
    agent.run_once()
    pub.publish({"s/app": Deploy(broken)})
    agent.run_once()
    assert report(store).status == "FAILED"
    pub.publish({"s/app": Deploy(good)})  # the controller rolls back
    agent.run_once()
    agent.run_once()
    assert ran(log) == ["CREATE", "UPDATE", "UPDATE"]
    got = report(store)
    assert (got.config, got.status, got.action) == (pub.digests["s/app"], "COMPLETE", "UPDATE")
