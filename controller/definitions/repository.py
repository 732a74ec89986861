"""Read a commit's tree through dulwich's object store, never the working directory.

What the controller renders is a function of a commit, so it reads files from
that commit's tree: uncommitted edits in a checkout are invisible here. Trees
are cached by object id within a ``CommitTree``, so walking a directory costs
one object read per tree and per blob.

Paths are posix and relative to the repository root (no leading ``/``);
``a/./b`` and ``a//b`` are normalised, ``..`` may not climb above the root.

Symlinks are followed through the commit's own tree, as a checkout of that
commit would resolve them. A link whose target leaves the repository (an
absolute target, or ``..`` above the root), names nothing, or loops is
``BrokenSymlink``: a definitions repository means the same on every machine,
so nothing outside it may be read. Bundles (``walk``) still refuse any
symlink inside them: a bundle is unpacked on the server, where a link would
point somewhere else.

The helpers at the end (``init_repo_from_dir``, ``commit_all``, ``revert``)
write to a repository; they exist for tests and the demo.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypedDict

from dulwich import porcelain
from dulwich.errors import NotGitRepository
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tag, Tree
from dulwich.objectspec import AmbiguousShortId, scan_for_short_id
from dulwich.refs import Ref
from dulwich.repo import Repo

from setpoint.controller.errors import SetpointError
from setpoint.store.timestamps import format_timestamp

Kind = Literal["file", "dir", "symlink", "submodule"]
DEFAULT_AUTHOR = "setpoint demo <demo@setpoint.invalid>"

_S_IFGITLINK = 0o160000
# As Linux's ELOOP bound: more links than this on one path is taken as a cycle.
MAX_SYMLINK_HOPS = 40
_HEX_RE = re.compile(r"^[0-9a-f]{4,40}$")
_SUFFIX_RE = re.compile(r"(~\d*|\^\d*)$")


# -- errors --------------------------------------------------------------------


class GitError(SetpointError):
    """Root of the errors of reading (or writing) a git repository."""


class NotARepository(GitError):
    def __init__(self, path: str) -> None:
        super().__init__(f"not a git repository: {path}")
        self.path = path


class RevisionNotFound(GitError):
    def __init__(self, rev: str, detail: str = "") -> None:
        super().__init__(f"revision not found: {rev!r}" + (f" ({detail})" if detail else ""))
        self.rev = rev
        self.detail = detail


class InvalidPath(GitError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"invalid path {path!r}: {reason}")
        self.path = path
        self.reason = reason


class PathNotFound(GitError):
    """No file at ``path`` in ``commit`` (absent, or a directory where a file was wanted)."""

    def __init__(self, path: str, commit: str, detail: str = "") -> None:
        super().__init__(
            f"{path!r} not found at commit {commit[:12]}" + (f": {detail}" if detail else "")
        )
        self.path = path
        self.commit = commit
        self.detail = detail


class NotADirectory(GitError):
    def __init__(self, path: str, commit: str) -> None:
        super().__init__(f"{path!r} is not a directory at commit {commit[:12]}")
        self.path = path
        self.commit = commit


class UnsupportedEntry(GitError):
    """A symlink or submodule where a regular file is needed (bundles are self-contained)."""

    def __init__(self, path: str, kind: str, commit: str) -> None:
        super().__init__(f"{path!r} is a {kind} at commit {commit[:12]}; only files are allowed")
        self.path = path
        self.kind = kind
        self.commit = commit


class BrokenSymlink(GitError):
    """A symlink that cannot be followed: its target leaves the repository, names
    nothing at the commit, or leads through too many symlinks (a cycle)."""

    def __init__(self, link: str, target: str, reason: str, commit: str) -> None:
        super().__init__(
            f"{link!r} is a symlink to {target!r}, which {reason} at commit {commit[:12]}"
        )
        self.link = link
        self.target = target
        self.reason = reason
        self.commit = commit


class RepoWriteError(GitError):
    """A helper that writes to a repository (commit, revert) could not do it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# -- paths ---------------------------------------------------------------------


def normalize_path(path: str) -> tuple[str, ...]:
    """The segments of a repository path; ``()`` is the root.

    ``a/./b``, ``a//b`` and ``a/b/`` are ``("a", "b")``; ``a/../b`` is ``("b",)``;
    a leading ``/`` or a ``..`` that climbs above the root raises ``InvalidPath``.
    """
    if not isinstance(path, str):
        raise InvalidPath(str(path), "not a string")
    if path.startswith("/"):
        raise InvalidPath(path, "absolute paths are not allowed")
    if "\x00" in path:
        raise InvalidPath(path, "NUL in path")
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not out:
                raise InvalidPath(path, "'..' escapes the repository root")
            out.pop()
            continue
        out.append(segment)
    return tuple(out)


def _kind_of(mode: int) -> Kind:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if mode & 0o170000 == _S_IFGITLINK:
        return "submodule"
    return "file"


def _file_mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


# -- reading a commit ------------------------------------------------------------


class CommitTree:
    """The tree of one commit, read from the object store.

    Use it while its ``GitRepo`` is open.
    """

    def __init__(self, repo: Repo, commit: str, tree_id: ObjectID) -> None:
        self._repo = repo
        self.commit = commit
        self._root = tree_id
        self._trees: dict[ObjectID, Tree] = {}

    def __repr__(self) -> str:
        return f"CommitTree({self.commit[:12]})"

    def _tree(self, tree_id: ObjectID) -> Tree:
        tree = self._trees.get(tree_id)
        if tree is None:
            obj = self._repo.object_store[tree_id]
            if not isinstance(obj, Tree):
                raise GitError(f"object {tree_id.decode()} is not a tree")
            tree = self._trees[tree_id] = obj
        return tree

    def _lookup(self, segments: tuple[str, ...]) -> tuple[int, ObjectID] | None:
        """The entry at ``segments``, symlinks followed; None if nothing is there.

        ``BrokenSymlink`` when a link on the way cannot be followed. A link's
        ``..`` climbs from where the link really is (the entries walked so far,
        links already replaced by their targets), as the file system would.
        """
        walked: list[tuple[str, int, ObjectID]] = []  # (name, mode, sha) from the root
        todo = list(segments)
        asked = len(todo)  # how many of ``todo`` are the path asked for, not a link's target
        link: tuple[str, str] | None = None  # the last link followed: (path, target)
        hops = 0
        while todo:
            from_link = len(todo) > asked
            segment = todo.pop(0)
            if not from_link:
                asked -= 1
            if segment in ("", "."):
                continue
            if segment == "..":
                if not walked:
                    assert link is not None  # the path asked for is normalised
                    raise BrokenSymlink(*link, "leaves the repository", self.commit)
                walked.pop()
                continue
            mode, sha = walked[-1][1:] if walked else (stat.S_IFDIR, self._root)
            entry = None
            if stat.S_ISDIR(mode):
                with contextlib.suppress(KeyError):
                    entry = self._tree(sha)[segment.encode("utf-8", "surrogateescape")]
            if entry is None:
                if from_link and link is not None:
                    raise BrokenSymlink(*link, "does not exist", self.commit)
                return None
            mode, sha = entry
            if not stat.S_ISLNK(mode):
                walked.append((segment, mode, sha))
                continue
            target = self._blob(sha).decode("utf-8", "surrogateescape")
            link = ("/".join([*(w[0] for w in walked), segment]), target)
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise BrokenSymlink(*link, "leads through a cycle of symlinks", self.commit)
            if target.startswith("/"):
                raise BrokenSymlink(*link, "leaves the repository", self.commit)
            todo[:0] = target.split("/")
        return (walked[-1][1], walked[-1][2]) if walked else (stat.S_IFDIR, self._root)

    def _display(self, segments: tuple[str, ...]) -> str:
        return "/".join(segments)

    def _need_dir(self, path: str) -> tuple[tuple[str, ...], ObjectID]:
        segments = normalize_path(path)
        found = self._lookup(segments)
        if found is None:
            raise PathNotFound(self._display(segments), self.commit)
        mode, sha = found
        if not stat.S_ISDIR(mode):
            raise NotADirectory(self._display(segments), self.commit)
        return segments, sha

    def _blob(self, sha: ObjectID) -> bytes:
        obj = self._repo.object_store[sha]
        if not isinstance(obj, Blob):
            raise GitError(f"object {sha.decode()} is not a blob")
        return obj.as_raw_string()

    def kind(self, path: str) -> Kind | None:
        """What is at ``path`` (the root is a ``dir``), or None if nothing is.

        Symlinks are followed: ``symlink`` is a link that cannot be (``read``
        says why).
        """
        try:
            found = self._lookup(normalize_path(path))
        except BrokenSymlink:
            return "symlink"
        return None if found is None else _kind_of(found[0])

    def exists(self, path: str) -> bool:
        return self.kind(path) is not None

    def mode(self, path: str) -> int:
        """0o755 for an executable file, 0o644 for any other; ``PathNotFound`` if absent."""
        segments = normalize_path(path)
        found = self._lookup(segments)
        if found is None:
            raise PathNotFound(self._display(segments), self.commit)
        return _file_mode(found[0])

    def read(self, path: str) -> bytes:
        """The content of the file at ``path``, symlinks followed.

        ``PathNotFound`` when absent or a directory; ``BrokenSymlink`` for a
        symlink that cannot be followed, ``UnsupportedEntry`` for a submodule.
        """
        segments = normalize_path(path)
        shown = self._display(segments)
        found = self._lookup(segments)
        if found is None:
            raise PathNotFound(shown, self.commit)
        mode, sha = found
        kind = _kind_of(mode)
        if kind == "dir":
            raise PathNotFound(shown, self.commit, "is a directory")
        if kind != "file":
            raise UnsupportedEntry(shown, kind, self.commit)
        return self._blob(sha)

    def listdir(self, path: str = "") -> list[str]:
        """The names in the directory at ``path``, sorted.

        ``PathNotFound`` when absent, ``NotADirectory`` when it is not a directory.
        """
        _segments, sha = self._need_dir(path)
        return sorted(
            entry.path.decode("utf-8", "surrogateescape") for entry in self._tree(sha).iteritems()
        )

    def walk(self, path: str = "") -> list[tuple[str, int, bytes]]:
        """Every file below the directory ``path``: (relative path, 0o644/0o755, content).

        Sorted by relative path. A symlink or submodule anywhere below raises
        ``UnsupportedEntry`` naming it: what is walked becomes a bundle, and a
        bundle must be self-contained.
        """
        segments, sha = self._need_dir(path)
        out = [
            (rel, _file_mode(mode), self._blob(blob))
            for rel, mode, blob in self._iter_files(sha, segments, ())
        ]
        return sorted(out, key=lambda f: f[0])

    def _iter_files(
        self, tree_id: ObjectID, base: tuple[str, ...], rel: tuple[str, ...]
    ) -> Iterator[tuple[str, int, ObjectID]]:
        for entry in self._tree(tree_id).iteritems():
            name = entry.path.decode("utf-8", "surrogateescape")
            kind = _kind_of(entry.mode)
            here = (*rel, name)
            if kind == "dir":
                yield from self._iter_files(entry.sha, base, here)
            elif kind == "file":
                yield "/".join(here), entry.mode, entry.sha
            else:
                raise UnsupportedEntry(self._display(base + here), kind, self.commit)

    def blob_id(self, path: str) -> str:
        """The git object id (hex) of the file or tree at ``path``."""
        segments = normalize_path(path)
        found = self._lookup(segments)
        if found is None:
            raise PathNotFound(self._display(segments), self.commit)
        return found[1].decode("ascii")


class CommitInfo(TypedDict):
    sha: str
    author: str
    subject: str
    time: str  # committer time, ISO 8601 in UTC
    timestamp: int


class GitRepo:
    """A local repository (bare or not), read through its object store.

    Close it when done (or use it as a context manager): dulwich keeps pack
    files open.
    """

    def __init__(self, repo: Repo) -> None:
        self._repo = repo

    @classmethod
    def open(cls, path: str | Path) -> GitRepo:
        try:
            return cls(Repo(str(path)))
        except (NotGitRepository, FileNotFoundError, NotADirectoryError) as exc:
            raise NotARepository(str(path)) from exc

    @property
    def path(self) -> str:
        return str(self._repo.path)

    def close(self) -> None:
        self._repo.close()

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GitRepo({self.path!r})"

    # -- revisions --------------------------------------------------------------

    def _object(self, sha: ObjectID) -> ShaFile | None:
        try:
            return self._repo.object_store[sha]
        except KeyError:
            return None

    def _peel(self, obj: ShaFile | None, rev: str) -> Commit:
        seen = 0
        while isinstance(obj, Tag) and seen < 64:
            obj = self._object(obj.object[1])
            seen += 1
        if obj is None:
            raise RevisionNotFound(rev)
        if not isinstance(obj, Commit):
            raise RevisionNotFound(rev, f"names a {obj.type_name.decode()}, not a commit")
        return obj

    def _ref(self, name: str) -> ObjectID | None:
        raw = name.encode("utf-8")
        refs = self._repo.refs
        candidates = [raw] if raw.startswith(b"refs/") or raw == b"HEAD" else []
        candidates += [
            b"refs/" + raw,
            b"refs/tags/" + raw,
            b"refs/heads/" + raw,
            b"refs/remotes/" + raw,
            b"refs/remotes/" + raw + b"/HEAD",
        ]
        for ref in candidates:
            try:
                return refs[Ref(ref)]
            except KeyError:
                continue
        return None

    def _base(self, name: str, rev: str) -> Commit:
        if not name:
            raise RevisionNotFound(rev, "empty revision")
        lowered = name.lower()
        if len(name) == 40 and _HEX_RE.match(lowered):
            return self._peel(self._object(ObjectID(lowered.encode("ascii"))), rev)
        sha = self._ref(name)
        if sha is not None:
            return self._peel(self._object(sha), rev)
        if _HEX_RE.match(lowered):
            try:
                obj = scan_for_short_id(self._repo.object_store, lowered.encode("ascii"), Commit)
            except AmbiguousShortId as exc:
                raise RevisionNotFound(rev, "ambiguous abbreviated sha") from exc
            except KeyError:
                raise RevisionNotFound(rev) from None
            return self._peel(obj, rev)
        raise RevisionNotFound(rev)

    def _commit(self, rev: str) -> Commit:
        if not isinstance(rev, str):
            raise RevisionNotFound(str(rev), "not a string")
        name = rev
        steps: list[tuple[str, int]] = []
        while m := _SUFFIX_RE.search(name):
            token = m.group(1)
            steps.append((token[0], int(token[1:]) if len(token) > 1 else 1))
            name = name[: m.start()]
        commit = self._base(name, rev)
        for op, n in reversed(steps):
            if op == "~":
                for _ in range(n):
                    commit = self._parent(commit, 1, rev)
            elif n:
                commit = self._parent(commit, n, rev)
        return commit

    def _parent(self, commit: Commit, n: int, rev: str) -> Commit:
        if len(commit.parents) < n:
            raise RevisionNotFound(rev, f"{commit.id.decode()[:12]} has no parent {n}")
        return self._peel(self._object(commit.parents[n - 1]), rev)

    def resolve(self, rev: str) -> str:
        """The commit (hex sha) that ``rev`` names.

        Accepts ``HEAD``, a branch or tag name, a full ref (``refs/heads/x``), a
        full or abbreviated (at least 4 hex digits) sha, each followed by any
        number of ``~N``, ``~``, ``^N`` or ``^``. ``RevisionNotFound`` otherwise.
        """
        return self._commit(rev).id.decode("ascii")

    def tree(self, rev: str) -> CommitTree:
        commit = self._commit(rev)
        return CommitTree(self._repo, commit.id.decode("ascii"), commit.tree)

    def commit_info(self, rev: str) -> CommitInfo:
        commit = self._commit(rev)
        message = commit.message.decode("utf-8", "replace")
        return CommitInfo(
            sha=commit.id.decode("ascii"),
            author=commit.author.decode("utf-8", "replace"),
            subject=message.split("\n", 1)[0].strip(),
            time=format_timestamp(commit.commit_time, digits=0),
            timestamp=int(commit.commit_time),
        )


# -- writing: helpers for tests and the demo --------------------------------------


def _identity(author: str) -> bytes:
    return author.encode("utf-8")


def _commit_kwargs(author: str, timestamp: int | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "author": _identity(author),
        "committer": _identity(author),
        "no_verify": True,  # no hooks
        "sign": False,  # whatever the user's commit.gpgsign says
    }
    if timestamp is not None:
        kwargs.update(
            author_timestamp=timestamp,
            commit_timestamp=timestamp,
            author_timezone=0,
            commit_timezone=0,
        )
    return kwargs


def commit_all(
    repo_path: str | Path,
    message: str,
    author: str = DEFAULT_AUTHOR,
    timestamp: int | None = None,
) -> str:
    """Stage every change in the working tree (adds, edits, deletions) and commit.

    Files matched by ``.gitignore`` are left out. An empty commit is allowed.
    ``timestamp`` (seconds, UTC) makes the commit sha reproducible.
    """
    path = str(repo_path)
    try:
        with Repo(path) as repo:
            porcelain.add(repo)
            sha = porcelain.commit(repo, message, **_commit_kwargs(author, timestamp))
    except NotGitRepository as exc:
        raise NotARepository(path) from exc
    except porcelain.Error as exc:
        raise RepoWriteError(path, str(exc)) from exc
    return sha.decode("ascii")


def init_repo_from_dir(
    src: Path,
    dest: Path,
    message: str,
    author: str = DEFAULT_AUTHOR,
    branch: str = "main",
    timestamp: int | None = None,
) -> str:
    """Create a non-bare repository at ``dest`` holding a copy of ``src``, committed.

    ``dest`` must not exist or be empty; a ``.git`` inside ``src`` is not copied.
    The first commit goes on ``branch``. Returns the commit sha.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise RepoWriteError(str(dest), "destination exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    with porcelain.init(str(dest)) as repo:
        repo.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/" + branch.encode("utf-8")))
    shutil.copytree(
        src, dest, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git")
    )
    return commit_all(dest, message, author=author, timestamp=timestamp)


def revert(repo_path: str | Path, rev: str, author: str = DEFAULT_AUTHOR) -> str:
    """Commit, on top of HEAD, the inverse of the change that ``rev`` made.

    Uses ``dulwich.porcelain.revert`` (a three-way merge, so ``rev`` need not be
    HEAD; when it is, the new tree is exactly the tree of ``rev``'s parent).
    Refuses when the working tree has uncommitted changes to tracked files, a
    root or merge commit, and conflicts (``RepoWriteError``); the working tree
    and index are updated to the new commit.
    """
    path = str(repo_path)
    try:
        with Repo(path) as repo:
            status = porcelain.status(repo, untracked_files="no")
            if status.unstaged or any(status.staged.values()):
                raise RepoWriteError(path, "uncommitted changes; commit or discard them first")
            target = GitRepo(repo).resolve(rev)
            sha = porcelain.revert(
                repo, target, author=_identity(author), committer=_identity(author)
            )
    except NotGitRepository as exc:
        raise NotARepository(path) from exc
    except porcelain.Error as exc:
        raise RepoWriteError(path, f"cannot revert {rev}: {exc}") from exc
    if sha is None:  # only with no_commit=True
        raise RepoWriteError(path, f"revert of {rev} made no commit")
    return sha.decode("ascii")


__all__ = [
    "DEFAULT_AUTHOR",
    "BrokenSymlink",
    "CommitInfo",
    "CommitTree",
    "GitError",
    "GitRepo",
    "InvalidPath",
    "Kind",
    "NotADirectory",
    "NotARepository",
    "PathNotFound",
    "RepoWriteError",
    "RevisionNotFound",
    "UnsupportedEntry",
    "commit_all",
    "init_repo_from_dir",
    "normalize_path",
    "revert",
]
