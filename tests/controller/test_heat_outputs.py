"""A Heat template's ``outputs:`` computed: known from the commit, pending until
the deployments they read reported, shown by ``setpoint render`` and
``setpoint status --repo``. The template is the corpus' conditions.yaml, run
to convergence by real agents (the hooks are processes) on a local store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions
from setpoint.controller.rollout.outputs import outputs_from_reports
from setpoint.store.local import LocalStore
from tests.controller.conftest import RepoFactory
from tests.controller.test_heat_templates import HeatFleet

CORPUS = Path(__file__).parent / "heat_corpus"
ENV = "parameter_defaults: {env_type: prod}\nsetpoint: {servers: {db: server1, replica: server2}}\n"


def rendered(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["render", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_outputs_are_pending_until_reported_then_known(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = tmp_path / "store"
    fleet = HeatFleet(
        tmp_path,
        {"stacks/db.yaml": (CORPUS / "conditions.yaml").read_text(), "stacks/db.env.yaml": ENV},
        store=LocalStore(store_path),
    )
    repo = str(fleet.repo_path)
    before = rendered(capsys, "--repo", repo)["outputs"]
    assert before == [
        {
            "stack": "db",
            "name": "primary_dsn",
            "description": "",
            "state": "pending",
            "value": None,
            "reason": "waits for db/primary_deployment.dsn on server1: not yet run with its "
            "current config",
            "secret": False,
        },
        {
            "stack": "db",
            "name": "replica_dsn",
            "description": "",
            "state": "pending",
            "value": None,
            "reason": "waits for db/replica_deployment.dsn on server2: not yet run with its "
            "current config",
            "secret": False,
        },
        {
            "stack": "db",
            "name": "mode",
            "description": "",
            "state": "known",
            "value": "production",
            "reason": "",
            "secret": False,
        },
    ]
    fleet.converge()
    capsys.readouterr()  # the agents' logs
    after = rendered(capsys, "--repo", repo, "--store", str(store_path))["outputs"]
    assert {o["name"]: (o["state"], o["value"]) for o in after} == {
        "mode": ("known", "production"),
        "primary_dsn": ("known", "pg://primary:500"),
        "replica_dsn": ("known", "pg://replica:500"),
    }
    assert main(["render", "--repo", repo, "--store", str(store_path)]) == 0
    text = capsys.readouterr().out
    assert '\noutputs:\n  db/primary_dsn  "pg://primary:500"\n' in text

    assert main(["status", "--store", str(store_path), "--repo", repo]) == 0
    status = capsys.readouterr().out
    assert status.endswith(
        'outputs:\n  db/primary_dsn  "pg://primary:500"\n  db/replica_dsn  "pg://replica:500"\n'
        '  db/mode  "production"\n'
    )
    assert main(["status", "--store", str(store_path), "--repo", repo, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [o["value"] for o in got["outputs"]] == [
        "pg://primary:500",
        "pg://replica:500",
        "production",
    ]
    # Without --repo, status reads the store alone and shows no outputs.
    assert main(["status", "--store", str(store_path), "--json"]) == 0
    assert "outputs" not in json.loads(capsys.readouterr().out)


def test_an_output_setpoint_cannot_compute_is_a_warning(make_repo: RepoFactory) -> None:
    template = (CORPUS / "conditions.yaml").read_text() + (
        "  address:\n    value: {get_attr: [db, accessIPv4]}\n"
        "  network:\n    value: {get_attr: [backup_network, name]}\n"
    )
    env = "parameter_defaults: {backups_wanted: false, env_type: test}\n"
    repo = make_repo(
        {"stacks/db.yaml": template, "stacks/db.env.yaml": env + "setpoint: {servers: {db: s1}}\n"}
    )
    warnings: list[object] = []
    with GitRepo.open(repo) as git:
        model = load_model(git.tree("HEAD"), on_problem=warnings.append)
    shown = {o.name: o for o in outputs_from_reports(model, {})}
    assert shown["address"].state == "not computed"
    unknown = (
        "get_attr: attribute 'accessIPv4' of a server is not known to setpoint "
        "(known: name, first_address, networks, addresses, from inventory labels)"
    )
    assert shown["address"].reason == unknown
    assert shown["network"].state == "not computed"
    assert [str(w) for w in warnings][-2:] == [
        "stacks/db.yaml:82: outputs.address.value: output 'address' is not computed by setpoint: "
        + unknown,
        "stacks/db.yaml:84: outputs.network.value: output 'network' is not computed by setpoint: "
        "get_attr: attributes of OS::Neutron::Net are not known to setpoint",
    ]


def test_a_mistake_in_an_output_is_an_error(make_repo: RepoFactory) -> None:
    template = (CORPUS / "conditions.yaml").read_text() + (
        "  broken:\n    value: {str_split: [',']}\n"
        "  missing:\n    value: {get_attr: [nowhere, x]}\n"
    )
    repo = make_repo(
        {
            "stacks/db.yaml": template,
            "stacks/db.env.yaml": "setpoint: {servers: {db: s1, replica: s2}}\n",
        }
    )
    with GitRepo.open(repo) as git, pytest.raises(InvalidDefinitions) as err:
        load_model(git.tree("HEAD"))
    assert [str(p) for p in err.value.problems] == [
        'stacks/db.yaml:82: outputs.broken.value.str_split: Incorrect arguments to "str_split" '
        'should be: "str_split" : [ ",", "apples,pears", <index>]',
        "stacks/db.yaml:84: outputs.missing.value: output 'missing': unknown resource 'nowhere'",
    ]


def test_an_output_of_a_hidden_parameter_is_masked(
    make_repo: RepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    template = (CORPUS / "functions.yaml").read_text() + (
        "  password:\n    value: {get_param: admin_password}\n"
        "  login:\n    value:\n      str_replace:\n"
        "        {template: 'admin:PW', params: {PW: {get_param: admin_password}}}\n"
    )
    repo = make_repo(
        {"stacks/web.yaml": template, "stacks/web.env.yaml": "setpoint: {servers: {web: s1}}\n"}
    )
    assert main(["render", "--repo", str(repo)]) == 0
    text = capsys.readouterr().out
    assert "s3cret" not in text
    assert "  web/password  ******** (secret)\n  web/login  ******** (secret)\n" in text
    got = rendered(capsys, "--repo", str(repo))["outputs"]
    masked = {o["name"]: (o["value"], o["secret"]) for o in got}
    assert masked["password"] == ("******** (secret)", True)
    assert masked["listen_count"] == (2, False)


def test_plan_shows_the_outputs_a_change_adds_removes_or_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = tmp_path / "store"
    template = (CORPUS / "conditions.yaml").read_text()
    files = {"stacks/db.yaml": template, "stacks/db.env.yaml": ENV}
    fleet = HeatFleet(tmp_path, files, store=LocalStore(store_path))
    fleet.converge()
    changed = (
        template.replace("  primary_dsn:\n", "  port:\n    value: 5432\n  primary_dsn:\n")
        .replace("  mode:\n", "  old_mode:\n")
        .replace("        role: replica\n", "        role: secondary\n")
    )
    fleet.commit({"stacks/db.yaml": changed})
    capsys.readouterr()
    plan = ["plan", "HEAD~1", "HEAD", "--repo", str(fleet.repo_path), "--store", str(store_path)]
    assert main([*plan, "--no-diff"]) == 0
    text = capsys.readouterr().out
    assert text.endswith(
        "outputs:\n"
        "  + db/port  5432\n"
        '  ~ db/replica_dsn  "pg://replica:500" -> pending: waits for db/replica_deployment.dsn '
        "on server2: not yet run with its current config\n"
        '  + db/old_mode  "production"\n'
        '  - db/mode  (was "production")\n'
        "\n"
        "1 server, 1 deployment change; 1 server unchanged\n"
    )
    assert main([*plan, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["outputs"]
    assert [(o["output"], bool(o["before"]), bool(o["after"])) for o in shown] == [
        ("db/port", False, True),
        ("db/replica_dsn", True, True),
        ("db/old_mode", False, True),
        ("db/mode", True, False),
    ]
    assert shown[1]["before"]["value"] == "pg://replica:500"
    assert shown[1]["after"]["state"] == "pending"
    assert main([*plan, "--format", "markdown"]) == 0
    assert "Outputs:\n\n```text\n  + db/port  5432\n" in capsys.readouterr().out


def test_plan_against_the_store_reads_an_output_from_the_commit_its_server_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mid-rollout: the config changes on both servers, the replica (which depends
    on the primary) waits, its pointer still naming the commit before. It still
    reports replica_dsn for the config it runs: the plan shows that value going
    to pending, not pending on both sides (measured against the newest commit)."""
    store_path = tmp_path / "store"
    template = (
        (CORPUS / "conditions.yaml")
        .read_text()
        .replace(
            "    condition: want_replica\n    properties:\n      config: {get_resource: db_config}",
            "    condition: want_replica\n    depends_on: [primary_deployment]\n"
            "    properties:\n      config: {get_resource: db_config}",
        )
    )
    files = {"stacks/db.yaml": template, "stacks/db.env.yaml": ENV}
    store = LocalStore(store_path)
    fleet = HeatFleet(tmp_path, files, store=store)
    fleet.converge()
    first = fleet.repo.resolve("HEAD")
    changed = template.replace("#!/bin/sh -e\n", "#!/bin/sh -e\n        # v2\n")
    fleet.commit({"stacks/db.yaml": changed})
    fleet.reconciler.run_pass()  # the primary's new config is out; the replica waits for it
    commits = {s: p.commit for s in ("server1", "server2") if (p := store.read_pointer(s))}
    assert commits["server2"] == first != commits["server1"]
    capsys.readouterr()
    plan = ["plan", "--repo", str(fleet.repo_path), "--store", str(store_path)]
    assert main([*plan, "--format", "json"]) == 0
    shown = {o["output"]: o for o in json.loads(capsys.readouterr().out)["outputs"]}
    assert list(shown) == ["db/replica_dsn"]  # primary_dsn: pending on both sides
    replica = shown["db/replica_dsn"]
    assert (replica["before"]["state"], replica["before"]["value"]) == (
        "known",
        "pg://replica:500",
    )
    assert replica["after"]["state"] == "pending"
    assert main([*plan, "--no-diff"]) == 0
    assert capsys.readouterr().out.endswith(
        "outputs:\n"
        '  ~ db/replica_dsn  "pg://replica:500" -> pending: waits for db/replica_deployment.dsn '
        "on server2: db/replica_deployment is itself waiting\n"
        "\n"
        "1 server, 1 deployment change; 1 server unchanged\n"
    )
