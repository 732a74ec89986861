"""The files of a commit as the readers see them: parsed YAML (cached by git
object id), ``get_file`` text and attached files or directories."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Protocol

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.model import AttachedFile
from setpoint.controller.definitions.repository import GitError, InvalidPath, normalize_path
from setpoint.controller.definitions.values import kind_of
from setpoint.controller.definitions.yamlsource import load_yaml
from setpoint.controller.errors import Problem
from setpoint.store.bundles import make_zip, tree_digest
from setpoint.store.digest import digest_bytes

# Parsed documents by (git object id, path), shared by every load in the process:
# a commit that changes one file parses that file only. Documents are never
# modified after parsing. Oldest entries leave first.
PARSED: dict[tuple[str, str], tuple[Any, tuple[Problem, ...]]] = {}
PARSED_MAX = 1024


class Tree(Protocol):
    """What the readers need of a commit (``definitions.repository.CommitTree``).

    Paths go through symlinks; ``kind`` is ``symlink`` for a link that cannot
    be followed, and ``read`` of it raises a ``GitError`` that says why.
    """

    commit: str

    def read(self, path: str) -> bytes: ...
    def kind(self, path: str) -> str | None: ...
    def listdir(self, path: str) -> list[str]: ...
    def walk(self, path: str) -> list[tuple[str, int, bytes]]: ...
    def mode(self, path: str) -> int: ...


@dataclass
class CommitFiles:
    """A commit's tree, read with every problem going to ``checks``."""

    tree: Tree
    checks: Checks
    # Paths whose symlink or submodule was reported already (a path is looked at
    # more than once, a problem is named once).
    refused: set[str] = field(default_factory=set)

    def kind(self, path: str) -> str | None:
        """What is at ``path``, symlinks followed (``Tree.kind``).

        Where a definition is looked for, a symlink that cannot be followed or
        a submodule is reported, never skipped in silence: a definition that
        disappears would delete its deployments.
        """
        kind = self.tree.kind(path)
        if kind in ("symlink", "submodule") and path not in self.refused:
            self.refused.add(path)
            self.checks.error(Where(path, 0, ""), self.why_not_read(path, kind))
        return kind

    def why_not_read(self, path: str, kind: str) -> str:
        """Why the symlink or submodule at ``path`` cannot be read, in words."""
        try:
            self.tree.read(path)
        except GitError as exc:
            return str(exc)
        return f"{path!r} is a {kind}"

    def parse(self, path: str) -> Any:
        """The YAML document at ``path``, parsed once per git object id (and path)."""
        blob_id = getattr(self.tree, "blob_id", None)
        if blob_id is None:
            return load_yaml(self.tree.read(path), path, self.checks.problems)
        key = (blob_id(path), path)
        hit = PARSED.get(key)
        if hit is None:
            problems: list[Problem] = []
            doc = load_yaml(self.tree.read(path), path, problems)
            hit = (doc, tuple(problems))
            if len(PARSED) >= PARSED_MAX:
                del PARSED[next(iter(PARSED))]
            PARSED[key] = hit
        self.checks.problems += hit[1]
        return hit[0]

    def resolve_path(self, base_file: str, path: Any, where: Where) -> str | None:
        """``path`` relative to ``base_file``'s folder; ``None`` if it leaves the repository."""
        if not isinstance(path, str) or not path:
            self.checks.error(where, f"get_file takes a relative path, got {kind_of(path)}")
            return None
        if path.startswith("/"):
            self.checks.error(where, f"get_file path {path!r} must be relative to {base_file}")
            return None
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(base_file), path))
        if joined == ".." or joined.startswith("../"):
            self.checks.error(where, f"get_file path {path!r} escapes the repository")
            return None
        try:
            normalize_path(joined)
        except InvalidPath as exc:  # e.g. a NUL, which no git path holds
            self.checks.error(where, f"get_file: {exc}")
            return None
        return joined

    def read_text(self, base_file: str, path: Any, where: Where) -> str | None:
        """The UTF-8 text of the file ``get_file: path`` names."""
        resolved = self.resolve_path(base_file, path, where)
        if resolved is None:
            return None
        kind = self.tree.kind(resolved)
        if kind in ("symlink", "submodule"):
            self.checks.error(where, f"get_file: {self.why_not_read(resolved, kind)}")
            return None
        if kind != "file":
            self.checks.error(where, f"get_file: no file {resolved!r} in the commit")
            return None
        try:
            return self.tree.read(resolved).decode("utf-8")
        except UnicodeDecodeError:
            self.checks.error(
                where, f"get_file: {resolved!r} is not UTF-8 text (attach it under files:)"
            )
            return None

    def attach(self, base_file: str, name: str, path: Any, where: Where) -> AttachedFile | None:
        """A file, or a directory bundled as a deterministic zip, under ``name``."""
        resolved = self.resolve_path(base_file, path, where)
        if resolved is None:
            return None
        kind = self.tree.kind(resolved)
        if kind in ("symlink", "submodule"):
            self.checks.error(where, f"get_file: {self.why_not_read(resolved, kind)}")
            return None
        want_dir = isinstance(path, str) and path.endswith("/")
        if kind == "file" and not want_dir:
            content = self.tree.read(resolved)
            mode = self.tree.mode(resolved)
            return AttachedFile(
                name=name,
                path=resolved,
                kind="file",
                digest=digest_bytes(content),
                content=content,
                executable=bool(mode & 0o111),
            )
        if kind == "dir":
            return self.attach_directory(name, resolved, where)
        what = "directory" if want_dir else "file or directory"
        if kind is None:
            self.checks.error(where, f"get_file: no {what} {resolved!r} in the commit")
        else:
            self.checks.error(
                where, f"get_file: {resolved!r} is a {kind}, not a {what}, in the commit"
            )
        return None

    def attach_directory(self, name: str, resolved: str, where: Where) -> AttachedFile | None:
        try:
            files = self.tree.walk(resolved)
        except GitError as exc:  # a symlink or submodule inside the bundle
            self.checks.error(where, f"get_file: cannot bundle {resolved!r}: {exc}")
            return None
        if not files:
            self.checks.error(where, f"get_file: directory {resolved!r} is empty")
            return None
        zipped = make_zip(files)
        return AttachedFile(
            name=name,
            path=resolved + "/",
            kind="directory",
            digest=tree_digest((p, m, digest_bytes(c)) for p, m, c in files),
            content=zipped,
            zip_digest=digest_bytes(zipped),
        )
