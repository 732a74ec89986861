"""What a hook gives back is bounded: output values, a deployment's outputs,
the stream tails and the streams themselves. An output over its bound fails the
run with a reason naming it and its size; it is never truncated silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agenttest import SERVER, Publisher, component, script

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.limits import MAX_DEPLOYMENT_OUTPUTS_BYTES, MAX_OUTPUT_BYTES, TAIL_BYTES
from setpoint.agentshim.processes import CAPTURE_BYTES
from setpoint.store import DeploymentReport
from setpoint.store.memory import MemoryStore
from tests.agent.test_agent_hooks import write_hook


def entry(store: MemoryStore) -> DeploymentReport:
    report = store.read_report(SERVER)
    assert report is not None
    return report.deployments["app/web"]


def zeros(n: int, name: str) -> str:
    """Shell that writes ``n`` zero characters into output ``name``."""
    return f'head -c {n} /dev/zero | tr "\\0" 0 > "$heat_outputs_path.{name}"\n'


def test_an_output_over_its_bound_fails_the_run_naming_it_and_its_size(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    size = 50 * 1024 * 1024
    body = zeros(size, "huge") + 'printf ok > "$heat_outputs_path.small"\n'
    outputs = [{"name": "huge"}, {"name": "small"}]
    publisher.publish({"app/web": script(body, outputs=outputs)})
    make_agent().run_once()
    dep = entry(store)
    assert dep.status == "FAILED"
    assert dep.reason == f"output 'huge' is {size} bytes (at most {MAX_OUTPUT_BYTES})"
    assert dep.outputs == {"small": "ok"}
    report = store.read_agent_object(SERVER, "report")
    assert report is not None
    assert len(report) < 64 * 1024


def test_the_outputs_of_one_deployment_are_bounded_together(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    count = MAX_DEPLOYMENT_OUTPUTS_BYTES // MAX_OUTPUT_BYTES + 1
    names = [f"o{i:02d}" for i in range(count)]
    body = "".join(zeros(MAX_OUTPUT_BYTES, n) for n in names)
    publisher.publish({"app/web": script(body, outputs=[{"name": n} for n in names])})
    make_agent().run_once()
    dep = entry(store)
    assert dep.status == "FAILED"
    assert dep.reason == (
        f"output {names[-1]!r} ({MAX_OUTPUT_BYTES} bytes) brings the outputs over"
        f" {MAX_DEPLOYMENT_OUTPUTS_BYTES} bytes"
    )
    assert sorted(dep.outputs) == names[:-1]


def test_outputs_within_the_bounds_are_reported_whole(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    publisher.publish(
        {"app/web": script(zeros(MAX_OUTPUT_BYTES, "big"), outputs=[{"name": "big"}])}
    )
    make_agent().run_once()
    dep = entry(store)
    assert dep.status == "COMPLETE"
    assert dep.outputs == {"big": "0" * MAX_OUTPUT_BYTES}


def test_an_external_hook_output_over_its_bound_fails_the_run(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    size = MAX_OUTPUT_BYTES + 1
    hook = (
        "#!/bin/sh\ncat > /dev/null\n"
        f"printf '{{\"big\": \"'; head -c {size} /dev/zero | tr '\\0' 0; printf '\"}}'\n"
    )
    write_hook(tmp_path / "hooks", "tool", hook)
    publisher.publish({"app/web": component([(["CREATE"], "tool", {})])})
    make_agent().run_once()
    dep = entry(store)
    assert (dep.status, dep.reason) == (
        "FAILED",
        f"output 'big' is {size} bytes (at most {MAX_OUTPUT_BYTES})",
    )


def test_deploy_stdout_carries_the_end_of_a_long_stream(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    body = "head -c 200000 /dev/zero | tr '\\0' x; echo; echo last line"
    publisher.publish({"app/web": script(body, outputs=[{"name": "deploy_stdout"}])})
    make_agent().run_once()
    dep = entry(store)
    assert dep.status == "COMPLETE"
    stdout = dep.outputs["deploy_stdout"]
    assert len(stdout.encode()) == MAX_OUTPUT_BYTES
    assert stdout.endswith("last line\n")


def test_tails_are_bounded_in_bytes_not_characters(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    body = "i=0; while [ $i -lt 3000 ]; do printf 'é'; printf 'ü' >&2; i=$((i+1)); done"
    publisher.publish({"app/web": script(body)})
    make_agent().run_once()
    dep = entry(store)
    for tail in (dep.stdout_tail, dep.stderr_tail):
        assert len(tail.encode()) <= TAIL_BYTES
        assert len(tail) == TAIL_BYTES // 2


def test_an_external_hook_flooding_stdout_fails_with_the_size(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    size = CAPTURE_BYTES + 10
    write_hook(
        tmp_path / "hooks", "tool", f"#!/bin/sh\ncat > /dev/null\nhead -c {size} /dev/zero\n"
    )
    publisher.publish({"app/web": component([(["CREATE"], "tool", {})])})
    agent = make_agent()
    agent.run_once()
    dep = entry(store)
    assert (dep.status, dep.reason) == (
        "FAILED",
        f"hook 'tool' printed {size} bytes on stdout, more than the {CAPTURE_BYTES} read",
    )
    assert agent.layout.log_path("app/web", "stdout").stat().st_size <= CAPTURE_BYTES * 3
