"""``setpoint watch`` skips a head whose definitions are broken in any way (a
YAML syntax error, a mapping where a server name goes, a symlink that leaves
the repository) and keeps serving the last good commit: daemon and ``--once``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.gitops.commitgate import CommitGate
from setpoint.controller.gitops.source import LocalSource
from setpoint.controller.gitops.watch import Watcher
from setpoint.store.base import Store
from setpoint.store.url import open_store
from tests.controller.gittools import Git

COMPONENT = """\
kind: Component
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: "#!/bin/sh\\necho hi\\n"
"""

GOOD = {
    "inventory.yaml": "kind: Inventory\nservers: {s1: {}, s2: {}}\n",
    "components/motd/component.yaml": COMPONENT,
    "stacks/site.yaml": "kind: Stack\ndeployments:\n  motd: {component: motd, servers: [s1, s2]}\n",
}

# Each breaks the head in a way that once crashed the loader or lost a stack.
BAD_HEADS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "an inventory with a syntax error": ({"inventory.yaml": "servers: {s1: {}\n"}, {}),
    "an empty inventory": ({"inventory.yaml": ""}, {}),
    "a mapping as a server name": (
        {"stacks/site.yaml": GOOD["stacks/site.yaml"].replace("[s1, s2]", "[s1, {x: 1}]")},
        {},
    ),
    "a stack that is a symlink out of the repository": ({}, {"stacks/site.yaml": "/etc/hostname"}),
}


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path / "home")


@pytest.fixture
def work(git: Git, tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git.commit_files(repo, GOOD, "good")
    return repo


def commit_bad(git: Git, repo: Path, case: str) -> str:
    files, links = BAD_HEADS[case]
    for path, target in links.items():
        (repo / path).unlink()
        os.symlink(target, repo / path)
    return git.commit_files(repo, files, f"break: {case}")


def commits_in_store(store: Store) -> set[str]:
    return {p.commit for s in store.list_servers() if (p := store.read_pointer(s)) is not None}


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_step_skips_a_broken_head_and_keeps_the_last_good_commit(
    git: Git, work: Path, tmp_path: Path, case: str
) -> None:
    good = git(work, "rev-parse", "HEAD")
    store = open_store(str(tmp_path / "store"))
    source = LocalSource(work, "main")
    watcher = Watcher(source, store, CommitGate(source.path), interval=5.0)
    assert watcher.step().deploying == good
    bad = commit_bad(git, work, case)
    result = watcher.step()
    assert result.head == bad
    assert result.refused is not None
    assert result.refused.reason.startswith("invalid definitions")
    assert result.deploying == good
    assert commits_in_store(store) == {good}
    assert sorted(store.list_servers()) == ["s1", "s2"]
    again = watcher.step()  # refused once, remembered: the daemon goes on serving
    assert again.deploying == good


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_watch_once_skips_a_broken_head(git: Git, work: Path, tmp_path: Path, case: str) -> None:
    good = git(work, "rev-parse", "HEAD")
    store_path = str(tmp_path / "store")
    watch = ["watch", "--repo", str(work), "--branch", "main", "--store", store_path, "--once"]
    assert main(watch) == 0
    commit_bad(git, work, case)
    assert main(watch) == 0
    assert commits_in_store(open_store(store_path)) == {good}
