"""A value of an input the derived config marks hidden never reaches the report
in cleartext: not in the stream tails, not in Heat's deploy_stdout/stderr, not
in the outputs, not in a failure's reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agenttest import SERVER, Publisher, component, script

from setpoint.agentshim.agent import Agent
from setpoint.store.masking import MASK
from setpoint.store.memory import MemoryStore
from tests.agent.test_agent_hooks import write_hook

SECRET = 's3cr3t "pass"\nword'
INPUTS: list[dict[str, Any]] = [
    {"name": "password", "type": "String", "value": SECRET, "hidden": True},
    {"name": "user", "type": "String", "value": "admin"},
]
DEPLOY_OUTPUTS = [{"name": "deploy_stdout"}, {"name": "deploy_stderr"}, {"name": "echo"}]


def report_text(store: MemoryStore) -> str:
    report = store.read_report(SERVER)
    assert report is not None
    return json.dumps(report.to_dict())


def test_a_script_echoing_a_hidden_input_reports_the_mask(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    body = (
        'echo "user $user password $password"\n'
        'echo "password $password" >&2\n'
        'printf %s "$password" > "$heat_outputs_path.echo"\n'
    )
    publisher.publish({"app/web": script(body, inputs=INPUTS, outputs=DEPLOY_OUTPUTS)})
    make_agent().run_once()
    report = store.read_report(SERVER)
    assert report is not None
    dep = report.deployments["app/web"]
    assert dep.status == "COMPLETE"
    assert dep.stdout_tail == f"user admin password {MASK}\n"
    assert dep.stderr_tail == f"password {MASK}\n"
    assert dep.outputs["deploy_stdout"] == f"user admin password {MASK}\n"
    assert dep.outputs["deploy_stderr"] == f"password {MASK}\n"
    assert dep.outputs["echo"] == MASK
    assert "s3cr3t" not in report_text(store)


def test_a_failing_script_echoing_a_hidden_input_reports_the_mask(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    body = 'echo "password $password" >&2\nexit 3\n'
    publisher.publish({"app/web": script(body, inputs=INPUTS)})
    make_agent().run_once()
    report = store.read_report(SERVER)
    assert report is not None
    dep = report.deployments["app/web"]
    assert (dep.status, dep.exit_code) == ("FAILED", 3)
    assert dep.stderr_tail == f"password {MASK}\n"
    assert "s3cr3t" not in report_text(store)


def test_an_external_hook_logging_its_document_reports_the_mask(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    # As heat-agents' hooks do: every input logged to stderr, JSON-escaped.
    hook = '#!/bin/sh\ncat >&2\nprintf \'{"deploy_stdout": "done"}\'\n'
    write_hook(tmp_path / "hooks", "tool", hook)
    derived = component([(["CREATE"], "tool", {})], inputs=INPUTS, outputs=DEPLOY_OUTPUTS)
    publisher.publish({"app/web": derived})
    make_agent().run_once()
    report = store.read_report(SERVER)
    assert report is not None
    dep = report.deployments["app/web"]
    assert dep.status == "COMPLETE"
    assert '"admin"' in dep.stderr_tail
    assert MASK in dep.stderr_tail
    assert "s3cr3t" not in report_text(store)


def test_inputs_not_hidden_are_reported_as_printed(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    inputs = [{**i, "hidden": False} if i["name"] == "password" else i for i in INPUTS]
    publisher.publish({"app/web": script('echo "$user"\n', inputs=inputs)})
    make_agent().run_once()
    report = store.read_report(SERVER)
    assert report is not None
    assert report.deployments["app/web"].stdout_tail == "admin\n"
