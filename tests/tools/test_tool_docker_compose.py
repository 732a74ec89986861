"""The built-in docker-compose tool, run through the agent against a STAND-IN docker.

Docker compose cannot run here: there is no container engine on these machines.
The stand-ins (tooltest.StandIn), first on PATH, are ``docker`` (with or without
the compose plugin) and ``docker-compose``; they record the arguments, the
environment and the files they were given (``--file``, ``--env-file``) and
return the status and output each test asks for. What is tested is what the hook
hands compose, and how it reads compose's result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agenttest import SERVER, Publisher
from tooltest import StandIn, put_tool_on_path, report, tool_config

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore

COMPOSE = """\
services:
  web:
    image: "nginx:${tag}"
    ports: ["${port}:80"]
    env_file: ["${setpoint_env_file}"]
"""
FLAGS = ("--file", "--env-file")


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    stand_in = StandIn(tmp_path / "bin", "docker", FLAGS)
    put_tool_on_path(monkeypatch, stand_in.path)
    return stand_in


def compose_calls(stand_in: StandIn) -> list[dict[str, Any]]:
    return [c for c in stand_in.calls if c["argv"][:2] != ["compose", "version"]]


def test_up_with_inputs_as_environment_and_env_file(
    docker: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    docker.behave(stdout="Container app-web-web-1  Started\n")
    values = {"tag": "1.25", "port": 8080, "motd": 'it\'s "quoted"\nand $HOME'}
    publisher.publish({"app/web": tool_config("docker-compose", COMPOSE, values=values)})
    agent = make_agent()
    assert agent.run_once().exit_code == 0, report(store).reason
    dep = report(store)
    assert (dep.status, dep.exit_code) == ("COMPLETE", 0)
    assert dep.stdout_tail == "Container app-web-web-1  Started\n"

    probe, call = docker.calls
    assert probe["argv"] == ["compose", "version"]
    work = agent.layout.work_dir("app/web")
    assert call["argv"] == [
        "compose",
        "--project-name",
        "app-web",
        "--project-directory",
        str(work),
        "--file",
        str(work / "docker-compose.yaml"),
        "--env-file",
        str(work / "setpoint.env"),
        "up",
        "-d",
        "--no-build",
    ]
    assert call["files"]["--file"] == COMPOSE
    env = call["env"]
    assert (env["tag"], env["port"], env["motd"]) == ("1.25", "8080", values["motd"])
    assert env["setpoint_env_file"] == str(work / "setpoint.env")
    assert env["deploy_action"] == "CREATE"
    env_file = call["files"]["--env-file"].splitlines()
    assert "tag=1.25" in env_file
    assert "port=8080" in env_file
    assert 'motd="it\'s \\"quoted\\"\\nand \\$HOME"' in env_file
    assert "deploy_action=CREATE" in env_file
    assert (work / "setpoint.env").stat().st_mode & 0o777 == 0o600


def test_update_then_delete_runs_down(
    docker: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent()
    for tag in ("1.25", "1.27"):
        derived = tool_config("docker-compose", COMPOSE, values={"tag": tag}, delete="")
        publisher.publish({"app/web": derived})
        agent.run_once()
    create, update = compose_calls(docker)
    assert (create["env"]["tag"], update["env"]["tag"]) == ("1.25", "1.27")
    assert update["argv"][-3:] == ["up", "-d", "--no-build"]
    assert report(store).action == "UPDATE"

    publisher.publish({})
    agent.run_once()
    delete = compose_calls(docker)[-1]
    assert delete["argv"][-1] == "down"
    assert delete["argv"][1:3] == ["--project-name", "app-web"]
    # The compose file last brought up is still named: compose finds the project's services.
    assert delete["files"]["--file"] == COMPOSE
    assert delete["env"]["deploy_action"] == "DELETE"
    got = store.read_report("web1")
    assert got is not None
    assert got.deployments == {}


def test_compose_failure_reports_its_error(
    docker: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    docker.behave(
        exit=1,
        stderr=" web Pulling\nError response from daemon: pull access denied for nginx\n",
        when={"compose version": {"stdout": "Docker Compose version v2.27.0\n"}},
    )
    publisher.publish({"app/web": tool_config("docker-compose", COMPOSE, values={"tag": "x"})})
    assert make_agent().run_once().exit_code == 1
    dep = report(store)
    assert dep.status == "FAILED"
    assert dep.reason == (
        "docker compose exited with status 1: "
        "Error response from daemon: pull access denied for nginx"
    )


def test_docker_compose_v1_when_docker_has_no_compose_plugin(
    docker: StandIn,
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
) -> None:
    docker.behave(exit=1, stderr="docker: 'compose' is not a docker command.\n")
    legacy = StandIn(docker.bin_dir, "docker-compose", FLAGS)
    options = {"project_name": "shop_1", "remove_orphans": True}
    derived = tool_config(
        "docker-compose", {"services": {"db": {"image": "postgres"}}}, options=options
    )
    publisher.publish({"app/web": derived})
    make_agent().run_once()
    assert report(store).status == "COMPLETE", report(store).reason
    assert [c["argv"] for c in docker.calls] == [["compose", "version"]]
    (call,) = legacy.calls
    assert call["argv"][:2] == ["--project-name", "shop_1"]
    assert call["argv"][-4:] == ["up", "-d", "--no-build", "--remove-orphans"]
    # A map config is written as JSON, which compose reads as YAML.
    assert '"image": "postgres"' in call["files"]["--file"]


def test_heat_env_files_input_writes_the_files(
    docker: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    files = [{"file_name": "conf/web.env", "content": "A=1\n"}]
    derived = tool_config("docker-compose", COMPOSE, values={"env_files": files})
    publisher.publish({"app/web": derived})
    agent = make_agent()
    agent.run_once()
    assert report(store).status == "COMPLETE", report(store).reason
    assert (agent.layout.work_dir("app/web") / "conf" / "web.env").read_text() == "A=1\n"


@pytest.mark.parametrize(
    ("config", "options", "values", "reason"),
    [
        ("", {}, {}, "docker-compose config is empty: no compose file to bring up"),
        (
            COMPOSE,
            {"project_name": "Bad Name"},
            {},
            "docker-compose option project_name 'Bad Name' is not a compose project name "
            "(lowercase letters, digits, '-' and '_', starting with a letter or digit)",
        ),
        (
            COMPOSE,
            {},
            {"env_files": [{"file_name": "../escape", "content": ""}]},
            "env file name '../escape' is not a relative path in the project",
        ),
    ],
)
def test_refused_documents(
    docker: StandIn,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    config: str,
    options: dict[str, str],
    values: dict[str, object],
    reason: str,
) -> None:
    derived = tool_config("docker-compose", config, options=options, values=values)
    publisher.publish({"app/web": derived})
    make_agent().run_once()
    assert (report(store).status, report(store).reason) == ("FAILED", reason)
    assert docker.calls == []


def test_preflight_checks_the_file_then_pulls_the_images_and_starts_nothing(
    docker: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    config = tool_config("docker-compose", COMPOSE, values={"tag": "1.25", "port": 8080})
    publisher.publish({}, preflight={"app/web": config})
    agent = make_agent()
    assert agent.run_once().exit_code == 0
    got = store.read_report(SERVER)
    assert got is not None
    assert got.preflight["app/web"].status == "PASSED"
    assert got.preflight["app/web"].reason == (
        "docker-compose checked the config but cannot say what would change"
    )
    steps = [c["argv"][-2:] for c in compose_calls(docker)]
    assert steps == [["config", "--quiet"], ["pull", "--quiet"]]


def test_an_image_that_cannot_be_pulled_fails_the_preflight(
    docker: StandIn, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent()
    work = agent.layout.work_dir("app/web")
    pull = (
        f"compose --project-name app-web --project-directory {work} "
        f"--file {work / 'docker-compose.yaml'} --env-file {work / 'setpoint.env'} pull"
    )
    docker.behave(when={pull: {"exit": 18, "stderr": "Error response: manifest unknown\n"}})
    config = tool_config("docker-compose", COMPOSE, values={"tag": "no-such", "port": 8080})
    publisher.publish({}, preflight={"app/web": config})
    assert agent.run_once().exit_code == 0
    got = store.read_report(SERVER)
    assert got is not None
    check = got.preflight["app/web"]
    assert check.status == "FAILED"
    assert check.reason == (
        "docker compose pull exited with status 18: Error response: manifest unknown"
    )
