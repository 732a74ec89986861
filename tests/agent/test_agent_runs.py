"""The run rules: once per digest, CREATE/UPDATE, actions filter, retries, DELETE."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from agenttest import SERVER, Clock, Deploy, Publisher, component, lines, script
from structlog.testing import capture_logs

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.due import retry_delay
from setpoint.store.documents import DeploymentReport
from setpoint.store.memory import MemoryStore


def counting(runs: Path, extra: str = "") -> str:
    """A script that appends its action to ``runs``."""
    return f'#!/bin/sh\necho "$deploy_action $deploy_resource_name" >> {runs}\n{extra}\n'


def test_create_runs_once_per_digest(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    runs = tmp_path / "runs"
    pointer = publisher.publish({"app/web": script(counting(runs))})
    agent = make_agent()

    first = agent.run_once()
    assert first.ran == ["app/web"]
    assert first.exit_code == 0
    second = agent.run_once()
    assert second.ran == []
    assert lines(runs) == ["CREATE web"]

    report = store.read_report(SERVER)
    assert report is not None
    assert (report.generation, report.manifest) == (pointer.generation, pointer.manifest)
    dep = report.deployments["app/web"]
    assert (dep.config, dep.action, dep.status) == (
        publisher.digests["app/web"],
        "CREATE",
        "COMPLETE",
    )
    assert (dep.attempts, dep.final, dep.exit_code) == (1, True, 0)

    # A restart (new Agent, same state dir) does not run it again either.
    assert make_agent().run_once().ran == []
    assert lines(runs) == ["CREATE web"]


def test_update_when_the_digest_changes(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    runs = tmp_path / "runs"
    publisher.publish({"app/web": script(counting(runs, "# v1"))})
    agent = make_agent()
    agent.run_once()
    publisher.publish({"app/web": script(counting(runs, "# v2"))})
    result = agent.run_once()
    assert result.ran == ["app/web"]
    assert lines(runs) == ["CREATE web", "UPDATE web"]
    report = store.read_report(SERVER)
    assert report is not None
    assert report.generation == 2
    assert report.deployments["app/web"].config == publisher.digests["app/web"]
    assert report.deployments["app/web"].action == "UPDATE"

    # Going back to v1 (a rollback is a new generation naming old digests) runs UPDATE again.
    publisher.publish({"app/web": script(counting(runs, "# v1"))})
    agent.run_once()
    assert lines(runs)[-1] == "UPDATE web"


def test_deployments_run_in_manifest_order_and_a_failure_does_not_stop_others(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    runs = tmp_path / "runs"
    publisher.publish(
        {
            "app/c": script(counting(runs)),
            "app/a": script(counting(runs, "exit 1")),
            "app/b": script(counting(runs)),
        }
    )
    result = make_agent().run_once()
    assert lines(runs) == ["CREATE c", "CREATE a", "CREATE b"]
    assert result.failing == ["app/a"]
    assert result.exit_code == 1
    report = store.read_report(SERVER)
    assert report is not None
    assert {n: d.status for n, d in report.deployments.items()} == {
        "app/a": "FAILED",
        "app/b": "COMPLETE",
        "app/c": "COMPLETE",
    }


def test_failure_is_retried_after_backoff_until_max_attempts(
    tmp_path: Path,
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    runs = tmp_path / "runs"
    publisher.publish({"app/web": script(counting(runs, "echo oops >&2; exit 3"))})
    agent = make_agent(max_attempts=3, retry_backoff=1.0)

    def report_entry() -> DeploymentReport:
        report = store.read_report(SERVER)
        assert report is not None
        return report.deployments["app/web"]

    with capture_logs() as logs:
        agent.run_once()
    failed = [e for e in logs if e["event"] == "deployment_failed"]
    assert failed
    assert failed[0]["attempts"] == 1
    dep = report_entry()
    assert (dep.status, dep.attempts, dep.final, dep.exit_code) == ("FAILED", 1, False, 3)
    assert dep.reason == "script exited with status 3"
    assert dep.stderr_tail == "oops\n"
    assert dep.retry_at == "2023-11-14T22:13:21.000Z"  # START + 1 s

    # Not due yet: the pointer has not changed and the backoff has not passed.
    agent.run_once()
    assert len(lines(runs)) == 1
    clock.advance(1.0)
    agent.run_once()
    assert len(lines(runs)) == 2
    assert report_entry().attempts == 2
    clock.advance(1.5)  # the second delay is 2 s
    agent.run_once()
    assert len(lines(runs)) == 2
    clock.advance(0.5)
    result = agent.run_once()
    assert len(lines(runs)) == 3
    dep = report_entry()
    assert (dep.status, dep.attempts, dep.final, dep.retry_at) == ("FAILED", 3, True, None)
    assert result.exit_code == 1

    # Final: no more tries, however long we wait.
    clock.advance(10_000)
    agent.run_once()
    assert len(lines(runs)) == 3

    # A new digest starts over.
    publisher.publish({"app/web": script(counting(runs, "exit 0"))})
    agent.run_once()
    dep = report_entry()
    assert (dep.status, dep.attempts, dep.action) == ("COMPLETE", 1, "CREATE")


def test_retry_delay_doubles_and_is_capped() -> None:
    assert [retry_delay(5, n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay(5, 20) == 300


def test_delete_runs_from_the_kept_config_and_forgets(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    runs = tmp_path / "runs"

    def comp(tag: str) -> dict[str, object]:
        return component(
            [
                (["CREATE", "UPDATE"], "script", f"echo create-{tag} >> {runs}"),
                (["DELETE"], "script", f"echo delete-{tag}-$deploy_action >> {runs}"),
            ]
        )

    publisher.publish({"app/a": comp("a"), "app/b": comp("b"), "app/c": comp("c")})
    agent = make_agent()
    agent.run_once()
    assert lines(runs) == ["create-a", "create-b", "create-c"]
    gone = publisher.digests["app/a"]

    publisher.publish({"app/b": comp("b")})
    # The agent uses its own verified copy: the store may have dropped the blob.
    store.delete_blob(gone)
    assert (tmp_path / "state" / "configs" / f"{gone.removeprefix('blake3:')}.json").exists()
    with capture_logs() as logs:
        result = agent.run_once()
    # Removals run after the manifest's deployments, in reverse of their previous order.
    assert lines(runs)[3:] == ["delete-c-DELETE", "delete-a-DELETE"]
    assert sorted(result.deleted) == ["app/a", "app/c"]
    assert [e["deployment"] for e in logs if e["event"] == "deployment_forgotten"] == [
        "app/c",
        "app/a",
    ]
    report = store.read_report(SERVER)
    assert report is not None
    assert list(report.deployments) == ["app/b"]
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert list(state["deployments"]) == ["app/b"]
    # Forgotten: coming back is a CREATE.
    publisher.publish({"app/b": comp("b"), "app/a": comp("a")})
    agent.run_once()
    assert lines(runs)[-1] == "create-a"


def test_removal_without_a_delete_config_or_action_forgets_at_once(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    runs = tmp_path / "runs"
    publisher.publish(
        {
            "app/plain": component([(["CREATE"], "script", f"echo c >> {runs}")]),
            "app/nodelete": Deploy(script(f"echo run-$deploy_action >> {runs}"), ("CREATE",)),
        }
    )
    agent = make_agent()
    agent.run_once()
    publisher.publish({})
    result = agent.run_once()
    assert sorted(result.deleted) == ["app/nodelete", "app/plain"]
    assert lines(runs) == ["c", "run-CREATE"]
    report = store.read_report(SERVER)
    assert report is not None
    assert report.deployments == {}


def test_failing_delete_is_retried_then_kept_in_the_report(
    tmp_path: Path,
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    runs = tmp_path / "runs"
    publisher.publish(
        {"app/a": component([(["CREATE"], "script", "true"), (["DELETE"], "script", "exit 1")])}
    )
    agent = make_agent(max_attempts=2)
    agent.run_once()
    publisher.publish({})
    agent.run_once()
    clock.advance(60)
    agent.run_once()
    report = store.read_report(SERVER)
    assert report is not None
    dep = report.deployments["app/a"]
    assert (dep.action, dep.status, dep.attempts, dep.final) == ("DELETE", "FAILED", 2, True)
    assert not runs.exists()


def test_action_outside_the_entry_actions_completes_without_running(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    runs = tmp_path / "runs"
    body = f'echo "$deploy_action" >> {runs}; printf v1 > "$heat_outputs_path.ver"'
    outputs = [{"name": "ver", "error_output": False}]
    publisher.publish({"app/web": Deploy(script(body, outputs=outputs), ("CREATE",))})
    agent = make_agent()
    agent.run_once()
    publisher.publish(
        {"app/web": Deploy(script(body + " # changed", outputs=outputs), ("CREATE",))}
    )
    result = agent.run_once()
    assert result.ran == []
    assert result.completed == ["app/web"]
    assert lines(runs) == ["CREATE"]
    report = store.read_report(SERVER)
    assert report is not None
    dep = report.deployments["app/web"]
    assert (dep.status, dep.action, dep.config) == (
        "COMPLETE",
        "UPDATE",
        publisher.digests["app/web"],
    )
    assert dep.reason is not None
    assert "UPDATE is not among the deployment's actions (CREATE)" in dep.reason
    assert dep.outputs == {"ver": "v1"}  # the outputs of the last run still stand
    # And it counts as succeeded: nothing next cycle.
    assert agent.run_once().completed == []


def test_component_without_a_config_for_the_action_completes_without_running(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    publisher.publish({"app/web": component([(["UPDATE"], "script", "exit 1")])})
    result = make_agent().run_once()
    assert result.ran == []
    report = store.read_report(SERVER)
    assert report is not None
    dep = report.deployments["app/web"]
    assert (dep.status, dep.action) == ("COMPLETE", "CREATE")
    assert dep.reason == "the component has no CREATE config: nothing run"


def test_deployments_not_yet_run_keep_their_last_entry(
    tmp_path: Path,
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    publisher.publish({"app/a": script("true # 1"), "app/b": script("exit 1")})
    agent = make_agent(max_attempts=1)
    agent.run_once()
    old_b = publisher.digests["app/b"]
    publisher.publish({"app/a": script("true # 2"), "app/b": script("exit 1 # 2")})
    # The agent stops after accepting the pointer: b's entry still names the older run.
    agent.stop.set()
    agent.run_once()
    report = store.read_report(SERVER)
    assert report is not None
    assert report.generation == 2
    assert report.deployments["app/a"].config != publisher.digests["app/a"]
    assert report.deployments["app/b"].config == old_b != publisher.digests["app/b"]
    assert report.deployments["app/b"].final is True
