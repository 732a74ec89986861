"""OS::Heat::RandomString: a value derived from the controller's render secret
(HMAC), stable across renders and machines with the same secret, following
Heat's length and character rules, and masked as a secret wherever it shows."""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.definitions.heat.randomstring import CLASSES, derive
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import Model
from setpoint.controller.definitions.render_secret import (
    RenderSecretError,
    create_render_secret,
    load_render_secret,
)
from setpoint.controller.errors import InvalidDefinitions
from setpoint.controller.fleet.fsck import fsck
from setpoint.controller.rollout.plan import make_plan
from setpoint.controller.rollout.plan_format import format_text
from setpoint.store.local import LocalStore
from tests.controller.test_heat_templates import HeatFleet, MakeFleet, dedent, make_fleet

__all__ = ["make_fleet"]  # the fixture, used by name

SECRET = bytes(range(32))
OTHER = bytes(range(1, 33))

TEMPLATE = """
heat_template_version: 2016-10-14
resources:
  server1:
    type: OS::Nova::Server
  db_password:
    type: OS::Heat::RandomString
    properties:
      length: 12
      character_classes:
      - class: digits
        min: 4
      character_sequences:
      - sequence: "!@"
        min: 2
  plain:
    type: OS::Heat::RandomString
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: password
      config: |
        #!/bin/sh
        echo "$password"
  setup:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        password: {get_attr: [db_password, value]}
        dsn:
          str_replace:
            template: db://app:PW@db
            params: {PW: {get_attr: [plain, value]}}
        user: app
        again: {get_resource: db_password}
"""


def values(model: Model) -> dict[str, object]:
    return model.deployment("app/setup").input_values


def load(make_fleet: MakeFleet, secret: bytes | None, template: str = TEMPLATE) -> Model:
    fleet = make_fleet({"stacks/app.yaml": dedent(template)})
    return load_model(fleet.repo.tree("HEAD"), render_secret=secret)


def test_the_value_follows_heats_rules_and_the_secret(make_fleet: MakeFleet) -> None:
    first = values(load(make_fleet, SECRET))
    password = str(first["password"])
    assert len(password) == 12
    assert sum(c in string.digits for c in password) >= 4
    assert sum(c in "!@" for c in password) >= 2
    assert set(password) <= set(string.digits + "!@")
    dsn = str(first["dsn"])
    assert dsn.startswith("db://app:")
    assert len(dsn) == len("db://app:@db") + 32
    assert set(dsn[9:-3]) <= set(CLASSES["lettersdigits"])


def test_the_value_is_stable_for_a_secret_and_changes_with_it(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    fleet = make_fleet({"stacks/app.yaml": dedent(TEMPLATE)})
    tree = fleet.repo.tree("HEAD")
    once = values(load_model(tree, render_secret=SECRET))
    again = values(load_model(tree, render_secret=SECRET))
    other = values(load_model(tree, render_secret=OTHER))
    assert once == again
    assert once["password"] != other["password"]
    assert once["dsn"] != other["dsn"]


def test_the_derivation_is_pinned() -> None:
    """The same secret gives the same value on every machine and every release:
    a change here would rerun every config that uses a RandomString."""
    identity = {"stack": "app", "resource": "db_password", "salt": ""}
    got = derive(SECRET, identity, 16, [(CLASSES["lettersdigits"], 1)])
    assert got == derive(SECRET, identity, 16, [(CLASSES["lettersdigits"], 1)])
    assert got == "rWlWPELxGDjoWK6w"


def test_inputs_that_carry_it_are_secret_and_masked_in_the_plan(make_fleet: MakeFleet) -> None:
    model = load(make_fleet, SECRET)
    component = model.components["app/setup"]
    secret = {i.name: i.secret for i in component.inputs}
    assert secret == {"password": True, "dsn": True, "user": False, "again": True}
    assert values(model)["again"] == values(model)["password"]
    plan = format_text(make_plan(None, model))
    assert str(values(model)["password"]) not in plan
    assert str(values(model)["dsn"]) not in plan


def test_render_masks_it_and_finds_the_secret_beside_the_signing_key(
    make_fleet: MakeFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = make_fleet({"stacks/app.yaml": dedent(TEMPLATE)})
    keys = tmp_path / "keys"
    assert main(["keygen", "ctl", "--out", str(keys)]) == 0
    capsys.readouterr()
    secret = load_render_secret(keys / "ctl.render-secret")
    expected = str(values(load_model(fleet.repo.tree("HEAD"), render_secret=secret))["password"])
    env = {"SETPOINT_SIGNING_KEY": str(keys / "ctl.key"), "PATH": "/usr/bin:/bin"}
    cmd = [
        sys.executable,
        "-m",
        "setpoint.controller.cli",
        "render",
        "--repo",
        str(fleet.repo_path),
    ]
    done = subprocess.run(
        [*cmd, "--server", "server1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert expected not in done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert "***" in json.dumps(body)


def test_without_the_secret_it_is_an_error_naming_the_resource(make_fleet: MakeFleet) -> None:
    with pytest.raises(InvalidDefinitions) as caught:
        load(make_fleet, None)
    found = [str(p) for p in caught.value.problems]
    assert found[0].startswith(
        "stacks/app.yaml:32: resources.setup.properties.input_values.password.get_attr: "
        "OS::Heat::RandomString 'db_password' needs the controller's render secret"
    )


def test_minimums_longer_than_the_length_is_heats_error(make_fleet: MakeFleet) -> None:
    short = TEMPLATE.replace("length: 12", "length: 5")
    with pytest.raises(InvalidDefinitions) as caught:
        load(make_fleet, SECRET, short)
    assert [str(p) for p in caught.value.problems] == [
        "stacks/app.yaml:8: resources.db_password.properties.length: Length property cannot "
        "be smaller than combined character class and character sequence minimums"
    ]


def test_a_render_secret_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "ctl.render-secret"
    create_render_secret(path)
    assert len(load_render_secret(path)) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        create_render_secret(path)
    path.write_text("c2hvcnQ=\n")
    with pytest.raises(RenderSecretError, match="expected 32 bytes, got 5"):
        load_render_secret(path)


def test_fsck_repairs_a_lost_config_with_the_render_secret(make_fleet: MakeFleet) -> None:
    fleet = make_fleet({"stacks/app.yaml": dedent(TEMPLATE)})
    fleet.reconciler.render_secret = SECRET
    outcome = fleet.reconciler.run_pass()
    (entry,) = outcome.desired.manifests["server1"].deployments
    fleet.store.delete_blob(entry.config)

    without = fsck(fleet.store, None, repo=fleet.repo)
    assert entry.config in without.unrepairable
    repaired = fsck(fleet.store, None, repo=fleet.repo, render_secret=SECRET)
    assert repaired.clean, repaired.problems
    assert entry.config in repaired.repaired


THROUGH_FUNCTIONS = """
heat_template_version: 2017-09-01
resources:
  server1:
    type: OS::Nova::Server
  pw:
    type: OS::Heat::RandomString
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      config: "#!/bin/sh\\n"
  setup:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        by_yaql:
          yaql:
            expression: concat("u:", $.data.p)
            data: {p: {get_attr: [pw, value]}}
        joined: {list_join: [",", ["a", {get_attr: [pw, value]}]]}
        strict:
          str_replace_strict:
            template: x=PW
            params: {PW: {get_resource: pw}}
        repeated:
          repeat:
            for_each: {"%p%": [{get_attr: [pw, value]}]}
            template: "pw %p%"
        merged: {map_merge: [{a: 1}, {b: {get_attr: [pw, value]}}]}
        split: {str_split: ["z", {get_attr: [pw, value]}]}
        plain: {list_join: [",", ["a", "b"]]}
"""


def test_every_data_function_keeps_it_secret(make_fleet: MakeFleet) -> None:
    """Whatever function a value made from the RandomString goes through, the
    input it reaches is secret and the plan never shows it."""
    model = load(make_fleet, SECRET, THROUGH_FUNCTIONS)
    got = values(model)
    password = str(got["joined"]).split(",", 1)[1]
    assert got["by_yaql"] == "u:" + password
    assert got["strict"] == "x=" + password
    assert got["repeated"] == ["pw " + password]
    secret = {i.name: i.secret for i in model.components["app/setup"].inputs}
    assert secret == {
        "by_yaql": True,
        "joined": True,
        "strict": True,
        "repeated": True,
        "merged": True,
        "split": True,
        "plain": False,
    }
    plan = format_text(make_plan(None, model))
    assert password not in plan


WITH_OUTPUT = (
    TEMPLATE
    + """
outputs:
  password:
    value: {get_attr: [db_password, value]}
  dsn:
    value: {list_join: ["", ["db://app:", {get_attr: [plain, value]}, "@db"]]}
"""
)


def test_status_enroll_and_forget_take_the_secret_and_outputs_stay_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command that reads a commit whose template uses a RandomString
    takes the render secret; an output made from its value is masked."""
    store = tmp_path / "store"
    fleet = HeatFleet(tmp_path, {"stacks/app.yaml": dedent(WITH_OUTPUT)}, store=LocalStore(store))
    secret_file = tmp_path / "ctl.render-secret"
    create_render_secret(secret_file)
    fleet.reconciler.render_secret = load_render_secret(secret_file)
    fleet.converge()
    model = load_model(fleet.repo.tree("HEAD"), render_secret=fleet.reconciler.render_secret)
    password = str(values(model)["password"])
    given = ["--repo", str(fleet.repo_path), "--render-secret", str(secret_file)]
    capsys.readouterr()

    assert main(["render", *given, "--json"]) == 0
    rendered = json.loads(capsys.readouterr().out)["outputs"]
    assert {o["name"]: (o["secret"], o["value"]) for o in rendered} == {
        "password": (True, "******** (secret)"),
        "dsn": (True, "******** (secret)"),
    }
    assert main(["status", "--store", str(store), *given, "--json"]) == 0
    shown = capsys.readouterr().out
    assert [o["value"] for o in json.loads(shown)["outputs"]] == ["******** (secret)"] * 2
    assert password not in shown

    assert main(["keygen", "ctl", "--out", str(tmp_path / "keys")]) == 0
    key = ["--signing-key", str(tmp_path / "keys/ctl.key")]
    assert main(["enroll", "server1", "--store", str(store), *given, *key]) == 0
    assert main(["forget", "server1", "--store", str(store), *given]) == 1  # still listed
    assert "it is in inventory.yaml" in capsys.readouterr().err
