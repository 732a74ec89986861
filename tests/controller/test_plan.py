"""``setpoint plan``: exact offline plans on crafted commit pairs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.definitions.repository import revert
from setpoint.controller.gitops.notes import CONVERGED, DeployRecord, Notebook
from setpoint.store.local import LocalStore
from tests.controller.conftest import CommitFiles
from tests.controller.fleet import Fleet, component, inventory
from tests.controller.published import report_every_entry

APP = """\
kind: Component
inputs:
  - name: version
    type: String
  - name: db_password
    type: String
    secret: true
    default: first-secret-value
  - name: datadir
    type: String
    default: /srv
    replace_on_change: true
outputs:
  - name: address
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      echo "configure $version"
"""

CLIENT = """\
kind: Component
inputs:
  - name: address
    type: String
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      echo "$address"
"""

STACK = """\
kind: Stack
parameters:
  version: {type: String, default: "1.0"}
deployments:
  app:
    component: app
    servers: {group: pair}
    input_values:
      version: {get_param: version}
"""

BASE: dict[str, str | None] = {
    "components/app/component.yaml": APP,
    "components/client/component.yaml": CLIENT,
    "stacks/web.yaml": STACK,
}


def plan(capsys: pytest.CaptureFixture[str], repo: Path, *args: str) -> tuple[int, str]:
    capsys.readouterr()  # drop what earlier commands printed
    code = main(["plan", "--repo", str(repo), *args])
    return code, capsys.readouterr().out


def plan_json(capsys: pytest.CaptureFixture[str], repo: Path, *args: str) -> dict[str, Any]:
    code, out = plan(capsys, repo, "--format", "json", *args)
    assert code == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


def servers(result: dict[str, Any], deployment: str) -> dict[str, dict[str, Any]]:
    (dep,) = [d for d in result["deployments"] if d["name"] == deployment]
    return {s["server"]: s for s in dep["servers"]}


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo(BASE)


def test_add_is_create_for_every_server(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_files(
        repo,
        {"stacks/web.yaml": STACK + "  extra:\n    component: client\n    servers: [s1]\n"
         "    input_values: {address: here}\n"},
    )  # fmt: skip
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    extra = servers(result, "web/extra")
    assert list(extra) == ["s1"]
    assert extra["s1"]["action"] == "CREATE"
    assert extra["s1"]["old"] is None
    assert extra["s1"]["new"].startswith("blake3:")
    assert '+    echo "$address"' in extra["s1"]["diff"]
    assert '+  address = "here"' in extra["s1"]["diff"]
    assert result["summary"] == {
        "text": "1 server, 1 deployment change; 2 servers unchanged",
        "servers_changed": 1,
        "deployments_changed": 1,
        "servers_unchanged": 2,
    }
    assert {s["action"] for s in servers(result, "web/app").values()} == {"unchanged"}


def test_change_shows_digests_and_a_diff_of_config_and_inputs(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_files(
        repo,
        {
            "components/app/component.yaml": APP.replace("configure", "set up"),
            "stacks/web.yaml": STACK.replace('"1.0"', '"1.1"'),
        },
    )
    code, out = plan(capsys, repo, "HEAD~1..HEAD", "--exit-code")
    assert code == 2
    assert "UPDATE    web/app (component app)" in out
    assert '-    echo "configure $version"' in out
    assert '+    echo "set up $version"' in out
    assert '-  version = "1.0"' in out
    assert '+  version = "1.1"' in out
    assert "rollout order:\n  1. web/app: [s2, s3]" in out
    assert out.rstrip().endswith("2 servers, 1 deployment change; 0 servers unchanged")
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    pair = servers(result, "web/app")
    assert pair["s2"]["old"] != pair["s2"]["new"]
    assert pair["s2"]["new"] == pair["s3"]["new"]
    assert result["rollout"] == [{"deployment": "web/app", "batches": [["s2", "s3"]]}]


def test_rename_and_reformat_is_no_change(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    reformatted = STACK.replace("servers: {group: pair}", "servers:\n      group: pair")
    commit_files(
        repo, {"stacks/web.yaml": None, "stacks/renamed.yaml": reformatted + "name: web\n"}
    )
    code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--exit-code")
    assert code == 0
    assert out.rstrip().endswith("no change: 2 servers unchanged")
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert result["changes"] is False
    assert result["rollout"] == []


def test_delete_runs_the_delete_config(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_files(repo, {"stacks/web.yaml": "kind: Stack\n"})
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    pair = servers(result, "web/app")
    assert {s["action"] for s in pair.values()} == {"DELETE"}
    assert pair["s2"]["new"] is None
    assert result["summary"]["text"] == "2 servers, 1 deployment change; 0 servers unchanged"


def test_revert_brings_the_old_digests_back(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = plan_json(capsys, repo, "HEAD", "HEAD")
    old_digest = servers(first, "web/app")["s2"]["new"]
    store = str(tmp_path / "store")
    assert main(["reconcile", "--repo", str(repo), "--store", store]) == 0
    commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"2.0"')}, "bump")
    _code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--store", store)
    assert "uploads: 1 blob\n" in out  # the new config
    assert main(["reconcile", "--repo", str(repo), "--store", store]) == 0
    revert(repo, "HEAD")
    result = plan_json(capsys, repo, "HEAD~1", "HEAD", "--store", store)
    assert result["uploads"] == 0
    pair = servers(result, "web/app")
    assert pair["s2"]["action"] == "UPDATE"
    assert pair["s2"]["new"] == old_digest
    assert pair["s2"]["returning"] is None  # nothing recorded yet
    # Once the first commit is recorded as converged, the plan says so.
    Notebook(repo).write(
        DeployRecord(
            commit=first["head"],
            environment="default",
            outcome=CONVERGED,
            started_at=1.0,
            finished_at=2.0,
            servers={"s2": "converged", "s3": "converged"},
            configs={"web/app": [old_digest]},
        )
    )
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert servers(result, "web/app")["s2"]["returning"] == first["head"]
    _code, out = plan(capsys, repo, "HEAD~1", "HEAD")
    assert f"returning: converged here at commit {first['head'][:12]}" in out


def test_secret_values_never_appear(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_files(
        repo, {"components/app/component.yaml": APP.replace("first-secret-value", "second-one")}
    )
    for fmt in ("text", "markdown", "json"):
        code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--format", fmt)
        assert code == 0
        assert "first-secret-value" not in out
        assert "second-one" not in out
        assert "(secret, changed)" in out
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    change = servers(result, "web/app")["s2"]
    # The digest still covers the secret: the server reruns.
    assert change["action"] == "UPDATE"
    assert "-  db_password = ******** (secret)" in change["diff"]
    assert "+  db_password = ******** (secret, changed)" in change["diff"]


def test_replace_on_change_input_is_a_replace(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_files(repo, {"components/app/component.yaml": APP.replace("/srv", "/data")})
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert {s["action"] for s in servers(result, "web/app").values()} == {"REPLACE"}


def test_outputs_only_agents_report_are_known_after_apply(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    client = (
        "  client:\n    component: client\n    servers: [s1]\n"
        "    input_values: {address: {get_attr: [app, address, s2]}}\n"
    )
    commit_files(repo, {"stacks/web.yaml": STACK + client})
    commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"1.1"') + client})
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    change = servers(result, "web/client")["s1"]
    assert change["action"] == "UPDATE"
    assert change["known_after_apply"] is True
    assert change["new"] is None
    assert change["reads_changed"] == ["web/app"]
    _code, out = plan(capsys, repo, "HEAD~2", "HEAD~1")
    assert "CREATE (known after apply) s1: (known after apply)" in out
    assert "<known after apply: web/app.address@s2>" in out


def test_a_dependent_is_known_after_apply_only_when_what_it_reads_changes(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    # app leaves s3 (its DELETE runs there); one client reads app on s2 only,
    # one reads app's map {s2, s3}, one only waits for app (depends_on).
    reads = (
        "  one:\n    component: client\n    servers: [s1]\n"
        "    input_values: {address: {get_attr: [app, address, s2]}}\n"
        "  map:\n    component: client\n    servers: [s1]\n"
        "    input_values: {address: {get_attr: [app, address]}}\n"
        "  after:\n    component: client\n    servers: [s1]\n    depends_on: [app]\n"
        "    input_values: {address: {get_attr: [other, address, s1]}}\n"
        "  other:\n    component: app\n    servers: [s1]\n"
        "    input_values: {version: '1'}\n"
    )
    listed = STACK.replace("{group: pair}", "[s2, s3]")
    commit_files(repo, {"stacks/web.yaml": listed + reads})
    commit_files(repo, {"stacks/web.yaml": listed.replace("[s2, s3]", "[s2]") + reads})
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert servers(result, "web/app")["s3"]["action"] == "DELETE"
    assert servers(result, "web/app")["s2"]["action"] == "unchanged"
    one = servers(result, "web/one")["s1"]
    assert (one["action"], one["reads_changed"]) == ("unchanged", [])
    assert servers(result, "web/after")["s1"]["action"] == "unchanged"
    mapped = servers(result, "web/map")["s1"]
    assert (mapped["action"], mapped["reads_changed"]) == ("UPDATE", ["web/app"])
    _code, out = plan(capsys, repo, "HEAD~1", "HEAD")
    assert "reads outputs of web/app, which changes" in out
    assert "UPDATE (known after apply) s1" in out.split("web/map")[1]
    assert "web/one (component" not in out


def test_invalid_head_fails_the_plan_like_validate(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_files(repo, {"stacks/web.yaml": STACK.replace("component: app", "component: ap")})
    assert main(["plan", "--repo", str(repo), "HEAD~1", "HEAD", "--exit-code"]) == 1
    err = capsys.readouterr().err
    assert "stacks/web.yaml:6: deployments.app.component: unknown component 'ap'" in err
    assert main(["plan", "--repo", str(repo), "HEAD~1", "HEAD"]) == 3
    capsys.readouterr()
    code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--format", "json")
    assert code == 3
    assert json.loads(out)["valid"] is False
    code, out = plan(capsys, repo, "nope", "HEAD", "--exit-code")
    assert code == 1


def test_markdown_is_capped_with_a_note(
    make_repo: Callable[..., Path], commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    many = "kind: Stack\ndeployments:\n" + "".join(
        f"  d{i}:\n    component: client\n    servers: [s1]\n"
        f"    input_values: {{address: '{{n}}-{i}'}}\n"
        for i in range(40)
    )
    repo = make_repo(
        {"components/client/component.yaml": CLIENT, "stacks/many.yaml": many.replace("{n}", "a")}
    )
    commit_files(repo, {"stacks/many.yaml": many.replace("{n}", "b")})
    code, full = plan(capsys, repo, "HEAD~1", "HEAD", "--format", "markdown")
    assert code == 0
    assert full.count("<details>") == 40
    assert "left out" not in full
    code, cut = plan(capsys, repo, "HEAD~1", "HEAD", "--format", "markdown", "--max-size", "6000")
    assert len(cut) <= 6000
    kept = cut.count("<details>")
    assert 0 < kept < 40
    assert f"{40 - kept} of 40 diffs left out to keep this comment under 6000 characters" in cut
    assert "| `many/d39` | s1 | UPDATE |" in cut  # the table is never cut
    assert "**1 server, 40 deployments change; 0 servers unchanged**" in cut


def test_json_is_stable(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"1.1"')})
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert sorted(result) == [
        "base",
        "base_problems",
        "changes",
        "deployed",
        "deployments",
        "environment",
        "format",
        "head",
        "outputs",
        "rollout",
        "summary",
        "uploads",
    ]
    assert result["format"] == "setpoint-plan/1"
    assert sorted(result["deployments"][0]) == [
        "action", "batches", "component", "name", "reorders", "servers", "stack",
    ]  # fmt: skip
    assert sorted(result["deployments"][0]["servers"][0]) == [
        "action", "after_joiners", "diff", "entries", "known_after_apply", "new", "old",
        "promoted_from", "reads_changed", "retry", "returning", "run", "server", "state",
    ]  # fmt: skip
    again = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert again == result


def test_promotion_names_the_environment_where_the_config_converged(
    make_repo: Callable[..., Path], commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    envs = {
        "environments/staging.yaml": "kind: Environment\nparameters: {version: '1.0'}\n"
        "inventory: {servers: {stg: {}}, groups: {pair: [stg]}}\n",
        "environments/production.yaml": "kind: Environment\nparameters: {version: '1.0'}\n"
        "inventory: {servers: {p1: {}, p2: {}}, groups: {pair: [p1, p2]}}\n",
    }
    repo = make_repo({**BASE, **envs})
    bumped = {k: v.replace("'1.0'", "'2.0'") for k, v in envs.items()}
    staged = commit_files(repo, bumped, "2.0 everywhere")
    staging = plan_json(capsys, repo, "HEAD~1", "HEAD", "--env", "staging")
    new_digest = servers(staging, "web/app")["stg"]["new"]
    assert staging["environment"] == "staging"
    Notebook(repo).write(
        DeployRecord(
            commit=staged,
            environment="staging",
            outcome=CONVERGED,
            started_at=1.0,
            finished_at=5.0,
            servers={"stg": "converged"},
            configs={"web/app": [new_digest]},
        )
    )
    production = plan_json(capsys, repo, "HEAD~1", "HEAD", "--env", "production")
    pair = servers(production, "web/app")
    assert sorted(pair) == ["p1", "p2"]
    assert pair["p1"]["new"] == new_digest
    assert pair["p1"]["promoted_from"] == {"environment": "staging", "commit": staged}
    _code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--env", "production")
    assert f"promoted: identical to staging at commit {staged[:12]}" in out


def test_rollout_batches_follow_the_update_policy(
    make_repo: Callable[..., Path], commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = STACK.replace(
        "servers: {group: pair}",
        "servers: [s1, s2, s3]\n    update_policy: {canary: 1, max_batch_size: 2}",
    )
    repo = make_repo({**BASE, "stacks/web.yaml": stack})
    commit_files(repo, {"stacks/web.yaml": stack.replace('"1.0"', '"1.1"')})
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert result["rollout"] == [{"deployment": "web/app", "batches": [["s1"], ["s2", "s3"]]}]
    _code, out = plan(capsys, repo, "HEAD~1", "HEAD")
    assert "1. web/app: [s1] then [s2, s3]" in out


def test_render_server_masks_secret_inputs_as_plan_does(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in ([], ["--json"]):
        capsys.readouterr()
        assert main(["render", "--repo", str(repo), "--server", "s2", *extra]) == 0
        out = capsys.readouterr().out
        assert "first-secret-value" not in out
        assert "******** (secret)" in out
        assert "/srv" in out  # other inputs are shown
    result = json.loads(out)
    (entry,) = result["servers"]["s2"]
    values = {i["name"]: i["value"] for i in entry["config"]["inputs"]}
    assert values["db_password"] == "******** (secret)"
    # The id is still the digest of the real config: the secret is part of it.
    assert main(["render", "--repo", str(repo), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["servers"]["s2"][0]["id"] == entry["id"]


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's tree with no entries


# -- changes that make an agent run something without a new digest ---------------------

LIFECYCLE = APP.replace(
    "actions: [CREATE, UPDATE]", "actions: [CREATE, UPDATE, SUSPEND, RESUME, BACKUP]"
)


def test_suspend_and_a_new_run_token_are_changes(
    make_repo: Callable[..., Path], commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo({**BASE, "components/app/component.yaml": LIFECYCLE})
    suspended = STACK + "    state: suspended\n"
    commit_files(repo, {"stacks/web.yaml": suspended})
    code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--exit-code")
    assert code == 2, out
    assert "SUSPEND   web/app (component app)" in out
    assert "state: active -> suspended" in out
    assert "1. web/app: [s2, s3]" in out
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    pair = servers(result, "web/app")
    assert pair["s2"]["action"] == "SUSPEND"
    assert pair["s2"]["old"] == pair["s2"]["new"]  # the same config: only its state changes
    assert pair["s2"]["state"] == {"old": "active", "new": "suspended"}
    assert result["changes"] is True
    _code, md = plan(capsys, repo, "HEAD~1", "HEAD", "--format", "markdown")
    assert "| `web/app` | s2, s3 | SUSPEND |" in md
    assert "state: active -> suspended" in md

    commit_files(repo, {"stacks/web.yaml": STACK})
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert servers(result, "web/app")["s3"]["action"] == "RESUME"

    backup = STACK + '    run: {action: BACKUP, token: "2026-11-22"}\n'
    commit_files(repo, {"stacks/web.yaml": backup})
    code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--exit-code")
    assert code == 2, out
    assert "runs BACKUP once (token 2026-11-22)" in out
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    change = servers(result, "web/app")["s2"]
    assert change["action"] == "RUN"
    assert change["run"] == {"action": "BACKUP", "token": "2026-11-22"}
    # The same token again runs nothing; a new one runs the action again.
    commit_files(repo, {"stacks/web.yaml": backup + "# the same token\n"})
    code, _out = plan(capsys, repo, "HEAD~1", "HEAD", "--exit-code")
    assert code == 0
    commit_files(repo, {"stacks/web.yaml": backup.replace("2026-11-22", "2026-11-23")})
    code, _out = plan(capsys, repo, "HEAD~1", "HEAD", "--exit-code")
    assert code == 2


def test_a_server_joining_or_leaving_a_group_is_a_change(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = "kind: Inventory\nservers: {s1: {}, s2: {}, s3: {}}\ngroups: {pair: [s1, s2, s3]}\n"
    commit_files(repo, {"inventory.yaml": inventory})
    code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--exit-code")
    assert code == 2, out
    assert "CREATE    s1:" in out
    _code, md = plan(capsys, repo, "HEAD~1", "HEAD", "--format", "markdown")
    assert "| `web/app` | s1 | CREATE |" in md
    commit_files(repo, {"inventory.yaml": inventory.replace("[s1, s2, s3]", "[s1, s2]")})
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert servers(result, "web/app")["s3"]["action"] == "DELETE"
    assert result["rollout"] == [{"deployment": "web/app", "batches": [["s3"]]}]
    code, out = plan(capsys, repo, "HEAD", "--exit-code")
    assert code == 2, out
    assert "DELETE    s3:" in out
    _code, md = plan(capsys, repo, "HEAD", "--format", "markdown")
    assert "| `web/app` | s3 | DELETE |" in md


def test_a_retry_not_yet_published_is_a_change_with_a_store(
    repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    assert main(["reconcile", "--repo", str(repo), "--store", str(store_dir)]) == 0
    report_every_entry(store, "s2", "FAILED")
    report_every_entry(store, "s3")
    # The failure halts the rollout: a failed rollout, exit 1.
    assert main(["reconcile", "--repo", str(repo), "--store", str(store_dir)]) == 1
    code, out = plan(capsys, repo, "HEAD", "HEAD", "--store", str(store_dir), "--exit-code")
    assert code == 0, out  # quarantined: the next pass publishes nothing
    assert main(["retry", "web/app", "--store", str(store_dir)]) == 0
    code, out = plan(capsys, repo, "HEAD", "HEAD", "--store", str(store_dir), "--exit-code")
    assert code == 2, out
    assert "RETRY     s2:" in out
    assert "retry 1: tries the failed config again" in out
    result = plan_json(capsys, repo, "HEAD", "HEAD", "--store", str(store_dir))
    pair = servers(result, "web/app")
    assert (pair["s2"]["action"], pair["s2"]["retry"]) == ("RETRY", 1)
    assert (pair["s3"]["action"], pair["s3"]["retry"]) == ("unchanged", None)
    # Once published, the retry is no longer a change.
    assert main(["reconcile", "--repo", str(repo), "--store", str(store_dir)]) == 0
    code, out = plan(capsys, repo, "HEAD", "HEAD", "--store", str(store_dir), "--exit-code")
    assert code == 0, out


# -- the first commit ----------------------------------------------------------------------


def test_the_first_commit_is_planned_against_the_empty_tree(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = plan(capsys, repo, "HEAD~1", "HEAD", "--exit-code")
    assert code == 2, out
    assert "has no parent" not in out
    assert "first commit: planned against the empty tree" in out
    assert "2 servers, 1 deployment change; 0 servers unchanged" in out
    result = plan_json(capsys, repo, "HEAD~1", "HEAD")
    assert result["base"] == EMPTY_TREE
    assert {s["action"] for s in servers(result, "web/app").values()} == {"CREATE"}
    # The empty tree named as BASE does the same; a bad BASE is still an error.
    assert plan_json(capsys, repo, EMPTY_TREE, "HEAD")["deployments"] == result["deployments"]
    for bad in ("nope", "nope~1"):
        code, _out = plan(capsys, repo, bad, "HEAD", "--exit-code")
        assert code == 1


# -- the batches the plan shows are the batches reconcile publishes ------------------------


def test_plan_batches_are_the_order_reconcile_publishes_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The group lists server_ubuntu first: sorted by name, server_fedora would
    # come first, but servers roll out in the order the group lists them.
    mixed = ["server_ubuntu", "server_fedora"]
    stack = (
        "kind: Stack\ndeployments:\n  app:\n    component: app\n"
        "    servers: {group: mixed}\n    update_policy: {canary: 1}\n"
        "    input_values: {version: 'V'}\n"
    )
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(mixed, {"mixed": mixed}),
            "components/app/component.yaml": component(),
            "stacks/web.yaml": stack.replace("V", "1"),
        },
    )
    try:
        for _ in range(5):
            if fleet.step().converged:
                break
        fleet.commit({"stacks/web.yaml": stack.replace("V", "2")})
        result = plan_json(capsys, fleet.repo_path, "HEAD~1", "HEAD")
        assert result["rollout"] == [
            {"deployment": "web/app", "batches": [["server_ubuntu"], ["server_fedora"]]}
        ]
        fleet.run_pass()
        assert [s for s in mixed if fleet.version(s, "web/app") == "2"] == ["server_ubuntu"]
    finally:
        fleet.close()


# -- a saved plan is published only if nothing moved ---------------------------------------


def test_reconcile_publishes_a_saved_plan_only_if_nothing_moved(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store_dir = str(tmp_path / "store")
    saved = str(tmp_path / "plan.json")
    assert main(["reconcile", "--repo", str(repo), "--store", store_dir]) == 0
    store = LocalStore(Path(store_dir))
    generation = store.read_pointer("s2").generation  # type: ignore[union-attr]
    commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"1.1"')})
    code, _out = plan(capsys, repo, "HEAD~1", "HEAD", "--store", store_dir, "--out", saved)
    assert code == 0
    assert json.loads(Path(saved).read_text())["plan"]["changes"] is True

    # HEAD moved: refused, nothing published.
    commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"1.2"')})
    assert main(["reconcile", "--repo", str(repo), "--store", store_dir, "--plan", saved]) == 6
    assert "branch head moved since the plan was made" in capsys.readouterr().err
    assert store.read_pointer("s2").generation == generation  # type: ignore[union-attr]

    # The store moved (another reconcile published): refused too.
    code, _out = plan(capsys, repo, "HEAD~1", "HEAD", "--store", store_dir, "--out", saved)
    assert main(["reconcile", "--repo", str(repo), "--store", store_dir]) == 0
    published = store.read_pointer("s2").generation  # type: ignore[union-attr]
    assert published > generation
    commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"1.3"')})
    code, _out = plan(capsys, repo, "HEAD~1", "HEAD", "--store", store_dir, "--out", saved)
    current = store.read_pointer("s3")
    assert current is not None
    store.write_pointer(replace(current, generation=current.generation + 1), current)
    assert main(["reconcile", "--repo", str(repo), "--store", store_dir, "--plan", saved]) == 6
    assert "store (its pointers) moved" in capsys.readouterr().err
    assert store.read_pointer("s2").generation == published  # type: ignore[union-attr]

    # Nothing moved: published.
    code, _out = plan(capsys, repo, "HEAD~1", "HEAD", "--store", store_dir, "--out", saved)
    assert main(["reconcile", "--repo", str(repo), "--store", store_dir, "--plan", saved]) == 0
    assert store.read_pointer("s2").generation > published  # type: ignore[union-attr]

    # --out records the store: it needs one.
    code, _out = plan(capsys, repo, "HEAD~1", "HEAD", "--out", saved)
    assert code == 1


# -- one revision: that commit against its parent -------------------------------------------


def test_one_revision_plans_that_commit_against_its_parent(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first commit: against the empty tree, as HEAD~1 HEAD plans it.
    result = plan_json(capsys, repo, "HEAD")
    assert result["base"] == EMPTY_TREE
    assert {s["action"] for s in servers(result, "web/app").values()} == {"CREATE"}
    first = result["head"]
    commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"1.1"')})
    code, out = plan(capsys, repo, "HEAD", "--exit-code")
    assert code == 2, out  # not HEAD..HEAD, which is always "no change"
    assert f"plan {first[:12]}.." in out
    assert "UPDATE    web/app (component app)" in out
    # A commit named alone is planned against its own parent, wherever HEAD is.
    commit_files(repo, {"README": "docs only\n"})
    result = plan_json(capsys, repo, "HEAD~1")
    assert result["base"] == first
    assert {s["action"] for s in servers(result, "web/app").values()} == {"UPDATE"}
    code, _out = plan(capsys, repo, "HEAD", "--exit-code")
    assert code == 0
    # BASE.. still plans BASE against HEAD.
    result = plan_json(capsys, repo, f"{first}..")
    assert {s["action"] for s in servers(result, "web/app").values()} == {"UPDATE"}


# -- a new update policy is a change even when no digest changes ----------------------------


def test_an_update_policy_that_reorders_batches_is_a_change(
    make_repo: Callable[..., Path], commit_files: CommitFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = STACK.replace("servers: {group: pair}", "servers: [s1, s2, s3]")
    repo = make_repo({**BASE, "stacks/web.yaml": stack})
    policy = stack + "    update_policy: {canary: 1, max_batch_size: 2}\n"
    commit_files(repo, {"stacks/web.yaml": policy})
    code, out = plan(capsys, repo, "HEAD", "--exit-code")
    assert code == 2, out
    assert "REORDER   web/app (component app)" in out
    assert "update batches: [s1, s2, s3] -> [s1] then [s2, s3]" in out
    assert "0 servers, 1 deployment change; 3 servers unchanged" in out
    result = plan_json(capsys, repo, "HEAD")
    (dep,) = result["deployments"]
    assert dep["action"] == "REORDER"
    assert dep["reorders"] == {"old": [["s1", "s2", "s3"]], "new": [["s1"], ["s2", "s3"]]}
    assert {s["action"] for s in dep["servers"]} == {"unchanged"}
    assert result["changes"] is True
    _code, md = plan(capsys, repo, "HEAD", "--format", "markdown")
    assert "| `web/app` | s1, s2, s3 | REORDER |" in md
    assert "update batches: [s1, s2, s3] -> [s1] then [s2, s3]" in md
    # Listing the servers in another order moves the canary: a change too.
    commit_files(repo, {"stacks/web.yaml": policy.replace("[s1, s2, s3]", "[s3, s1, s2]")})
    code, out = plan(capsys, repo, "HEAD", "--exit-code")
    assert code == 2, out
    assert "update batches: [s1] then [s2, s3] -> [s3] then [s1, s2]" in out
    # A pause between batches changes no batch: no change.
    paused = policy.replace("[s1, s2, s3]", "[s3, s1, s2]").replace(
        "max_batch_size: 2", "max_batch_size: 2, pause_time: 5"
    )
    commit_files(repo, {"stacks/web.yaml": paused})
    code, out = plan(capsys, repo, "HEAD", "--exit-code")
    assert code == 0, out


def test_counts_of_one_are_singular(
    make_repo: Callable[..., Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = make_repo({**BASE, "stacks/web.yaml": STACK.replace("{group: pair}", "[s1]")})
    _code, out = plan(capsys, repo, "HEAD", "HEAD")
    assert out.rstrip().endswith("no change: 1 server unchanged"), out
    store = str(tmp_path / "store")
    assert main(["reconcile", "--repo", str(repo), "--store", store]) == 0
    assert capsys.readouterr().out.startswith("0/1 server converged at ")


# -- against what is deployed: the commit the store's pointers name ------------------------


def test_plan_against_what_the_store_deployed(
    repo: Path, commit_files: CommitFiles, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    store = str(store_dir)
    # Nothing deployed yet: everything is new.
    store_dir.mkdir()
    result = plan_json(capsys, repo, "--store", store)
    assert result["base"] == EMPTY_TREE
    assert result["deployed"] == {"commit": None, "not_converged": {}}
    _code, out = plan(capsys, repo, "--store", store)
    assert "nothing deployed yet: planned against the empty tree" in out

    deployed = commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"1.1"')})
    assert main(["reconcile", "--repo", str(repo), "--store", store]) == 0
    report_every_entry(LocalStore(store_dir), "s2")  # s3's agent has not answered yet
    commit_files(repo, {"stacks/web.yaml": STACK.replace('"1.0"', '"1.2"')})
    commit_files(repo, {"README": "a second commit since the deploy\n"})
    for args in ((), ("HEAD",)):
        code, out = plan(capsys, repo, "--store", store, "--exit-code", *args)
        assert code == 2, out
        assert f"plan {deployed[:12]}.." in out  # not HEAD~1: what the store says runs
        assert f"deployed: {deployed[:12]} (the store's newest pointers)" in out
        assert "not converged on it yet: s3 (never reported)" in out
        assert '+  version = "1.2"' in out
    result = plan_json(capsys, repo, "--store", store)
    assert result["base"] == deployed
    assert result["deployed"] == {"commit": deployed, "not_converged": {"s3": "never reported"}}
    _code, md = plan(capsys, repo, "--store", store, "--format", "markdown")
    assert f"> deployed: `{deployed[:12]}`; not converged on it yet: s3 (never reported)" in md

    report_every_entry(LocalStore(store_dir), "s3")
    _code, out = plan(capsys, repo, "--store", store)
    assert f"deployed: {deployed[:12]} (the store's newest pointers); every server converged" in out
    # Two revisions still plan BASE against HEAD, the store only filling outputs in.
    result = plan_json(capsys, repo, "HEAD~1", "HEAD", "--store", store)
    assert result["deployed"] is None
    assert result["changes"] is False
