"""Symlinks in a definitions repository are followed through the commit's tree;
one that leaves the repository, names nothing or loops is a problem naming it,
never a definition skipped in silence (which would delete its deployments)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from setpoint.controller.cli.common import INVALID
from setpoint.controller.cli.main import main
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import Model
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions, Problem
from tests.controller.conftest import INVENTORY, write_files
from tests.controller.gittools import Git

COMPONENT = """\
kind: Component
inputs:
  - name: message
    type: String
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: {get_file: files/run.sh}
"""

STACK = """\
kind: Stack
deployments:
  motd:
    component: motd
    servers: [s1]
    input_values: {message: {get_file: files/banner.txt}}
"""

Links = dict[str, str]


def make(tmp_path: Path, files: dict[str, str | None], links: Links) -> Path:
    """A repository of ``files`` and symlinks (path -> target), committed by git
    (which records a symlink to a directory as the link it is)."""
    repo = tmp_path / "repo"
    inventory = {} if "inventory.yaml" in links else {"inventory.yaml": INVENTORY}
    write_files(repo, {**inventory, **files})
    for path, target in links.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, repo / path)
    git = Git(tmp_path / "home")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def load(repo: Path) -> Model:
    with GitRepo.open(repo) as r:
        return load_model(r.tree("HEAD"))


def problems(repo: Path) -> list[Problem]:
    with pytest.raises(InvalidDefinitions) as info:
        load(repo)
    return info.value.problems


SHARED: dict[str, str | None] = {
    "library/motd/component.yaml": COMPONENT,
    "library/motd/files/run.sh": "#!/bin/sh\necho $message\n",
    "shared/site.yaml": STACK,
    "shared/files/banner.txt": "hello\n",
    "fleets/prod.yaml": INVENTORY,
}


def test_stacks_components_and_the_inventory_may_be_symlinks(tmp_path: Path) -> None:
    repo = make(
        tmp_path,
        SHARED,
        {
            "inventory.yaml": "fleets/prod.yaml",
            "components/motd": "../library/motd",  # a directory
            "stacks/site.yaml": "../shared/site.yaml",  # a file
            "stacks/files": "../shared/files",
        },
    )
    model = load(repo)
    assert sorted(model.stacks) == ["site"]
    assert model.stacks["site"].file == "stacks/site.yaml"  # named as the stack is found
    assert model.deployment("site/motd").input_values == {"message": "hello\n"}
    assert model.components["motd"].configs[0].config == "#!/bin/sh\necho $message\n"
    assert sorted(model.inventory.servers) == ["s1", "s2", "s3"]


def test_a_symlink_is_resolved_in_the_commit_not_the_working_directory(tmp_path: Path) -> None:
    repo = make(tmp_path, {"library/x": "x"}, {"stacks/site.yaml": "../shared/site.yaml"})
    write_files(repo, SHARED)  # the target exists, uncommitted
    (found,) = problems(repo)
    assert (found.file, found.line) == ("stacks/site.yaml", 0)
    assert "'stacks/site.yaml' is a symlink to '../shared/site.yaml', which does not exist" in (
        found.message
    )


BROKEN: dict[str, tuple[Links, str]] = {
    "leaves the repository": (
        {"stacks/site.yaml": "../../outside.yaml"},
        "'stacks/site.yaml' is a symlink to '../../outside.yaml', which leaves the repository",
    ),
    "is absolute": (
        {"stacks/site.yaml": "/etc/hostname"},
        "'stacks/site.yaml' is a symlink to '/etc/hostname', which leaves the repository",
    ),
    "loops": (
        {"stacks/site.yaml": "other.yaml", "stacks/other.yaml": "site.yaml"},
        "a cycle of symlinks",
    ),
    "names nothing": (
        {"stacks/site.yaml": "../shared/gone.yaml"},
        "'stacks/site.yaml' is a symlink to '../shared/gone.yaml', which does not exist",
    ),
    "is the stacks folder, leaving": (
        {"stacks": "../elsewhere/stacks"},
        "'stacks' is a symlink to '../elsewhere/stacks', which leaves the repository",
    ),
    "is a component folder, leaving": (
        {"components/motd": "/opt/motd"},
        "'components/motd' is a symlink to '/opt/motd', which leaves the repository",
    ),
    "is the inventory, names nothing": (
        {"inventory.yaml": "fleets/gone.yaml"},
        "'inventory.yaml' is a symlink to 'fleets/gone.yaml', which does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_symlink_that_cannot_be_followed_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    links, message = BROKEN[case]
    repo = make(tmp_path, dict(SHARED), links)
    found = problems(repo)
    assert any(message in p.message for p in found), [str(p) for p in found]
    assert main(["validate", "--repo", str(repo)]) == INVALID
    assert message in capsys.readouterr().err


def test_get_file_follows_a_symlink_and_refuses_one_that_leaves(tmp_path: Path) -> None:
    files: dict[str, str | None] = {
        **SHARED,
        "stacks/site.yaml": STACK,
        "components/motd/component.yaml": COMPONENT,
        "components/motd/files/run.sh": "#!/bin/sh\necho $message\n",
    }
    repo = make(tmp_path, files, {"stacks/files/banner.txt": "../../shared/files/banner.txt"})
    assert load(repo).deployment("site/motd").input_values == {"message": "hello\n"}

    leaving = make(tmp_path / "b", files, {"stacks/files/banner.txt": "../../../banner.txt"})
    (found,) = problems(leaving)
    assert (found.file, found.line) == ("stacks/site.yaml", 6)
    assert found.message.startswith(
        "get_file: 'stacks/files/banner.txt' is a symlink to '../../../banner.txt', "
        "which leaves the repository"
    )
