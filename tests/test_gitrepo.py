"""Reading commits through dulwich's object store, and the demo's write helpers."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dulwich import porcelain
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.repo import Repo

from setpoint.controller.definitions.repository import (
    CommitTree,
    GitError,
    GitRepo,
    InvalidPath,
    NotADirectory,
    NotARepository,
    PathNotFound,
    RepoWriteError,
    RevisionNotFound,
    UnsupportedEntry,
    commit_all,
    init_repo_from_dir,
    normalize_path,
    revert,
)


@pytest.fixture(autouse=True)
def _no_user_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's ~/.gitconfig (signing, hooks, autocrlf) must not leak in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def _write(root: Path, files: dict[str, str], executable: tuple[str, ...] = ()) -> None:
    for path, text in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chmod(p, 0o755 if path in executable else 0o644)


@dataclass
class History:
    path: Path
    c1: str  # initial import
    c2: str  # edits app/conf/app.yaml, adds app/extra.txt, deletes NOTES
    c3: str  # edits README.md


@pytest.fixture
def history(tmp_path: Path) -> History:
    src = tmp_path / "src"
    _write(
        src,
        {
            "README.md": "# demo\n",
            "NOTES": "notes\n",
            "app/run.sh": "#!/bin/sh\necho run\n",
            "app/conf/app.yaml": "port: 80\n",
        },
        executable=("app/run.sh",),
    )
    dest = tmp_path / "repo"
    c1 = init_repo_from_dir(src, dest, "import")
    (dest / "app/conf/app.yaml").write_text("port: 8080\n")
    (dest / "app/extra.txt").write_text("extra\n")
    (dest / "NOTES").unlink()
    c2 = commit_all(dest, "second")
    (dest / "README.md").write_text("# demo, edited\n")
    c3 = commit_all(dest, "third\n\nwith a body")
    return History(dest, c1, c2, c3)


@pytest.fixture
def repo(history: History) -> Iterator[GitRepo]:
    with GitRepo.open(history.path) as r:
        yield r


# -- opening -----------------------------------------------------------------------


def test_open_refuses_non_repositories(tmp_path: Path) -> None:
    with pytest.raises(NotARepository):
        GitRepo.open(tmp_path / "absent")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARepository) as info:
        GitRepo.open(tmp_path / "plain")
    assert info.value.path == str(tmp_path / "plain")
    assert isinstance(info.value, GitError)


def test_open_bare_repository(history: History, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    with porcelain.clone(str(history.path), str(bare), bare=True, errstream=porcelain.NoneStream()):
        pass
    with GitRepo.open(bare) as r:
        assert r.resolve("HEAD") == history.c3
        assert r.tree("main~2").read("NOTES") == b"notes\n"


# -- revisions ---------------------------------------------------------------------


def test_resolve_forms(repo: GitRepo, history: History) -> None:
    c1, c2, c3 = history.c1, history.c2, history.c3
    cases = {
        "HEAD": c3,
        "main": c3,
        "refs/heads/main": c3,
        "heads/main": c3,
        c3: c3,
        c3.upper(): c3,
        c2[:7]: c2,
        c1[:4]: c1,
        "HEAD~1": c2,
        "HEAD~": c2,
        "HEAD^": c2,
        "HEAD^^": c1,
        "HEAD~2": c1,
        "main~1^": c1,
        "HEAD~0": c3,
        "HEAD^0": c3,
        f"{c2[:8]}~1": c1,
    }
    for rev, want in cases.items():
        assert repo.resolve(rev) == want, rev


def test_resolve_tags_and_other_branches(history: History) -> None:
    porcelain.tag_create(str(history.path), "v1", objectish=history.c1)
    porcelain.tag_create(
        str(history.path),
        "v2",
        objectish=history.c2,
        annotated=True,
        message=b"release",
        author=b"t <t@example.invalid>",
    )
    porcelain.branch_create(str(history.path), "feature", objectish=history.c2)
    with GitRepo.open(history.path) as r:
        assert r.resolve("v1") == history.c1
        assert r.resolve("v2") == history.c2
        assert r.resolve("refs/tags/v2~1") == history.c1
        assert r.resolve("feature") == history.c2


@pytest.mark.parametrize(
    "rev", ["nope", "", "HEAD~3", "HEAD^2", "main~10", "zzzz", "abc", "0000000", "refs/heads/x"]
)
def test_unknown_revisions(repo: GitRepo, rev: str) -> None:
    with pytest.raises(RevisionNotFound) as info:
        repo.resolve(rev)
    assert info.value.rev == rev
    with pytest.raises(RevisionNotFound):
        repo.tree(rev)


def test_revision_naming_a_tree_is_not_a_commit(repo: GitRepo) -> None:
    tree_id = repo.tree("HEAD").blob_id("")
    with pytest.raises(RevisionNotFound, match="not a commit"):
        repo.resolve(tree_id)


def test_commit_info(repo: GitRepo, history: History) -> None:
    info = repo.commit_info("HEAD")
    assert info["sha"] == history.c3
    assert info["subject"] == "third"
    assert info["author"] == "setpoint demo <demo@setpoint.invalid>"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["time"])
    assert repo.commit_info("HEAD~2")["subject"] == "import"


# -- reading a tree ----------------------------------------------------------------


def test_read_at_a_commit_ignores_the_working_directory(history: History) -> None:
    (history.path / "README.md").write_text("uncommitted edit\n")
    (history.path / "untracked.txt").write_text("not committed\n")
    with GitRepo.open(history.path) as r:
        head = r.tree("HEAD")
        assert head.read("README.md") == b"# demo, edited\n"
        assert head.kind("untracked.txt") is None
        old = r.tree(history.c1)
        assert old.commit == history.c1
        assert old.read("app/conf/app.yaml") == b"port: 80\n"
        assert old.read("NOTES") == b"notes\n"
        assert r.tree(history.c2).kind("NOTES") is None


def test_kind_listdir_and_blob_id(repo: GitRepo) -> None:
    tree = repo.tree("HEAD")
    assert tree.kind("") == "dir"
    assert tree.kind("app") == "dir"
    assert tree.kind("app/run.sh") == "file"
    assert tree.kind("app/missing") is None
    assert tree.kind("README.md/below") is None
    assert tree.listdir("") == ["README.md", "app"]
    assert tree.listdir("app") == ["conf", "extra.txt", "run.sh"]
    assert tree.listdir("app/conf/") == ["app.yaml"]
    assert tree.blob_id("README.md") == Blob.from_string(b"# demo, edited\n").id.decode()
    assert re.fullmatch(r"[0-9a-f]{40}", tree.blob_id("app"))
    assert tree.blob_id("app") != tree.blob_id("")
    # an unchanged directory keeps its object id across commits: a cache key
    assert repo.tree("HEAD~1").blob_id("app") == tree.blob_id("app")


def test_missing_paths(repo: GitRepo) -> None:
    tree = repo.tree("HEAD")
    with pytest.raises(PathNotFound) as info:
        tree.read("app/nothing.txt")
    assert info.value.path == "app/nothing.txt"
    assert info.value.commit == tree.commit
    with pytest.raises(PathNotFound):
        tree.read("app")  # a directory is not a file
    with pytest.raises(PathNotFound):
        tree.read("README.md/x")
    with pytest.raises(PathNotFound):
        tree.listdir("nothing")
    with pytest.raises(NotADirectory):
        tree.listdir("README.md")
    with pytest.raises(NotADirectory):
        tree.walk("app/run.sh")
    with pytest.raises(PathNotFound):
        tree.blob_id("nothing")


def test_paths_are_normalised_and_cannot_escape(repo: GitRepo) -> None:
    tree = repo.tree("HEAD")
    assert tree.read("app/./conf//app.yaml") == b"port: 8080\n"
    assert tree.read("app/conf/../run.sh").startswith(b"#!/bin/sh")
    assert tree.read("./README.md") == b"# demo, edited\n"
    for bad in ("../README.md", "app/../../README.md", "/README.md", "..", "a\x00b"):
        with pytest.raises(InvalidPath):
            tree.read(bad)
        with pytest.raises(InvalidPath):
            tree.kind(bad)
    assert normalize_path("") == ()
    assert normalize_path("a/b/..") == ("a",)


def test_walk_gives_modes_and_contents(repo: GitRepo) -> None:
    assert repo.tree("HEAD").walk("app") == [
        ("conf/app.yaml", 0o644, b"port: 8080\n"),
        ("extra.txt", 0o644, b"extra\n"),
        ("run.sh", 0o755, b"#!/bin/sh\necho run\n"),
    ]
    everything = repo.tree("HEAD").walk("")
    assert [p for p, _m, _d in everything] == [
        "README.md",
        "app/conf/app.yaml",
        "app/extra.txt",
        "app/run.sh",
    ]


def test_symlinks_are_followed_in_read_and_refused_in_walk(history: History) -> None:
    os.symlink("../../README.md", history.path / "app" / "conf" / "link")
    sha = commit_all(history.path, "add a symlink")
    with GitRepo.open(history.path) as r:
        tree = r.tree(sha)
        assert tree.kind("app/conf/link") == "file"
        assert tree.read("app/conf/link") == tree.read("README.md")
        with pytest.raises(UnsupportedEntry) as info:
            tree.walk("app")  # a bundle is self-contained
        assert info.value.path == "app/conf/link"
        assert info.value.kind == "symlink"


def _commit_with_submodule(path: Path) -> str:
    """A commit whose tree holds a gitlink (what ``git submodule add`` records)."""
    with Repo(str(path)) as r:
        head = r[r.head()]
        assert isinstance(head, Commit)
        root = r[head.tree]
        assert isinstance(root, Tree)
        vendor = Tree()
        vendor.add(b"lib", 0o160000, ObjectID(b"1" * 40))
        r.object_store.add_object(vendor)
        new_root = Tree()
        for entry in root.iteritems():
            new_root.add(entry.path, entry.mode, entry.sha)
        new_root.add(b"vendor", 0o040000, vendor.id)
        r.object_store.add_object(new_root)
        commit = Commit()
        commit.tree = new_root.id
        commit.parents = [head.id]
        commit.author = commit.committer = b"t <t@example.invalid>"
        commit.author_time = commit.commit_time = 1_700_000_000
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"add a submodule\n"
        r.object_store.add_object(commit)
        return commit.id.decode()


def test_submodules_are_refused_in_walk(history: History) -> None:
    sha = _commit_with_submodule(history.path)
    with GitRepo.open(history.path) as r:
        tree = r.tree(sha)
        assert tree.kind("vendor/lib") == "submodule"
        with pytest.raises(UnsupportedEntry) as info:
            tree.walk("")
        assert info.value.path == "vendor/lib"
        assert info.value.kind == "submodule"
        with pytest.raises(UnsupportedEntry):
            tree.read("vendor/lib")
        assert tree.walk("app")  # other directories are unaffected


def test_trees_are_cached_by_object_id(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    tree: CommitTree = repo.tree("HEAD")
    tree.walk("")
    reads: list[bytes] = []
    store = repo._repo.object_store
    original = type(store).__getitem__

    def counting(self: object, sha: bytes) -> object:
        reads.append(sha)
        return original(self, sha)  # type: ignore[arg-type]

    monkeypatch.setattr(type(store), "__getitem__", counting)
    tree.listdir("app/conf")
    tree.kind("app/run.sh")
    assert reads == []  # trees came from the cache; no blob was needed


# -- writing helpers ---------------------------------------------------------------


def test_commit_all_stages_adds_edits_and_deletions(history: History) -> None:
    with GitRepo.open(history.path) as r:
        before, after = r.tree(history.c1), r.tree(history.c2)
        assert before.kind("NOTES") == "file"
        assert after.kind("NOTES") is None
        assert after.read("app/extra.txt") == b"extra\n"
        assert after.read("app/conf/app.yaml") == b"port: 8080\n"
        assert r.resolve("HEAD~1") == history.c2
    status = porcelain.status(str(history.path))
    assert status.unstaged == []
    assert not any(status.staged.values())


def test_init_repo_is_reproducible_with_a_timestamp(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src, {"a": "1\n", "d/b.sh": "echo\n"}, executable=("d/b.sh",))
    (src / ".git").mkdir()
    (src / ".git" / "junk").write_text("not copied")
    one = init_repo_from_dir(src, tmp_path / "one", "m", timestamp=1_700_000_000)
    two = init_repo_from_dir(src, tmp_path / "two", "m", timestamp=1_700_000_000)
    assert one == two
    with GitRepo.open(tmp_path / "one") as r:
        assert r.resolve("main") == one
        assert r.tree("HEAD").walk("") == [("a", 0o644, b"1\n"), ("d/b.sh", 0o755, b"echo\n")]


def test_init_repo_refuses_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "x").write_text("x")
    with pytest.raises(RepoWriteError):
        init_repo_from_dir(tmp_path / "src", tmp_path / "dest", "m")


def test_revert_head_gives_the_parents_tree(history: History) -> None:
    new = revert(history.path, "HEAD")
    with GitRepo.open(history.path) as r:
        assert r.resolve("HEAD") == new
        assert r.resolve("HEAD~1") == history.c3
        assert r.tree(new).blob_id("") == r.tree(history.c2).blob_id("")
        assert r.commit_info(new)["subject"].startswith("Revert")
    assert (history.path / "README.md").read_text() == "# demo\n"
    status = porcelain.status(str(history.path))
    assert status.unstaged == []
    assert not any(status.staged.values())


def test_revert_an_older_commit(history: History) -> None:
    new = revert(history.path, history.c2)
    with GitRepo.open(history.path) as r:
        tree = r.tree(new)
        assert tree.read("NOTES") == b"notes\n"
        assert tree.kind("app/extra.txt") is None
        assert tree.read("app/conf/app.yaml") == b"port: 80\n"
        assert tree.read("README.md") == b"# demo, edited\n"  # c3 is kept


def test_revert_refusals(history: History) -> None:
    with pytest.raises(RepoWriteError):
        revert(history.path, history.c1)  # a root commit has no parent to go back to
    with pytest.raises(RevisionNotFound):
        revert(history.path, "nope")
    (history.path / "README.md").write_text("dirty\n")
    with pytest.raises(RepoWriteError, match="uncommitted"):
        revert(history.path, "HEAD")
    with GitRepo.open(history.path) as r:
        assert r.resolve("HEAD") == history.c3
