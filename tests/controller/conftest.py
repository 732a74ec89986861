"""Fixtures for controller tests: real git repositories built with dulwich."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir

EXAMPLE = Path(__file__).resolve().parents[2] / "repos-example"

INVENTORY = """\
kind: Inventory
servers:
  s1: {}
  s2: {}
  s3: {}
groups:
  pair: [s2, s3]
"""


def write_files(root: Path, files: dict[str, str | None]) -> None:
    """Write (or, for None, delete) files below ``root``; text is dedented."""
    for rel, text in files.items():
        path = root / rel
        if text is None:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


RepoFactory = Callable[[dict[str, str | None]], Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Create a git repository holding ``files`` (plus a default inventory) in one commit."""
    counter = iter(range(1000))

    def make(files: dict[str, str | None]) -> Path:
        n = next(counter)
        src = tmp_path / f"src{n}"
        write_files(src, {"inventory.yaml": INVENTORY, **files})
        dest = tmp_path / f"repo{n}"
        init_repo_from_dir(src, dest, "initial")
        return dest

    return make


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    dest = tmp_path / "example"
    init_repo_from_dir(EXAMPLE, dest, "Deploy the example stack")
    return dest


CommitFiles = Callable[..., str]


@pytest.fixture
def commit_files() -> CommitFiles:
    """Write files into a repository's working tree and commit them all."""

    def commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
        write_files(repo, files)
        return commit_all(repo, message)

    return commit


@pytest.fixture
def open_repo() -> Iterator[Callable[[Path], GitRepo]]:
    opened: list[GitRepo] = []

    def opener(path: Path) -> GitRepo:
        repo = GitRepo.open(path)
        opened.append(repo)
        return repo

    yield opener
    for repo in opened:
        repo.close()
