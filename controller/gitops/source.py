"""Where the controller reads the tracked branch from: a local repository or a remote one.

- ``LocalSource``: a repository on this machine (a checkout or a bare repo that
  people push to). Its refs are watched with watchdog, so a push wakes the
  controller at once; if the watch cannot start (no inotify, too many watches)
  the refs are simply re-read every poll, which is cheap.
- ``RemoteSource``: any URL dulwich can fetch from (``https://``, ``ssh://``,
  ``git://``, ``file://``, ``user@host:path``). The branch is fetched at an
  interval into a bare mirror the controller owns. The mirror never loses
  objects (no gc), so a commit that was deployed stays readable even after a
  force push rewrote the branch, which is what lets the controller compare.

Both give the same things: ``path`` (a local repository to read commits and
write notes in), ``refresh()``, ``head()`` and ``wait(seconds)``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from pathlib import Path
from typing import Any

import structlog
from dulwich.client import get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.refs import Ref
from dulwich.repo import Repo

from setpoint.controller.definitions.repository import GitError, NotARepository
from setpoint.controller.gitops.notes import NOTES_REF

log = structlog.get_logger("setpoint.gitsource")

# watchdog's event types that change a file (not "opened" or "closed_no_write").
_WRITES = frozenset({"created", "deleted", "modified", "moved", "closed"})

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:")


class FetchError(GitError):
    """The remote could not be fetched from (or pushed to)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def is_remote(location: str) -> bool:
    """A URL (or ``user@host:path``) rather than a path on this machine."""
    return "://" in location or bool(_SCP_LIKE.match(location))


def default_mirror(url: str) -> Path:
    """A controller-owned mirror directory for ``url`` (under the user's cache)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    name = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return cache / "setpoint" / "mirrors" / f"{name}.git"


def _branch_ref(branch: str) -> Ref:
    return Ref(
        branch.encode("utf-8")
        if branch.startswith("refs/")
        else b"refs/heads/" + branch.encode("utf-8")
    )


HEAD = "HEAD"


def _head_branch(repo: Repo) -> Ref:
    """The ref HEAD points at (``refs/heads/main``), or HEAD itself when detached."""
    names, _sha = repo.refs.follow(Ref(b"HEAD"))
    return names[-1] if names else Ref(b"HEAD")


def _read_ref(path: str, ref: Ref) -> str | None:
    # A fresh Repo each time: refs written by other processes (a push) are seen.
    try:
        with Repo(path) as repo:
            return repo.refs[ref].decode("ascii")
    except KeyError:
        return None
    except NotGitRepository as exc:
        raise NotARepository(path) from exc


class LocalSource:
    """A repository on this machine; a ref change wakes ``wait`` at once."""

    def __init__(self, path: str | Path, branch: str) -> None:
        self.branch = branch
        try:
            with Repo(str(path)) as repo:
                self.path = str(repo.path)
                self._git_dir = str(repo.controldir())
                # HEAD: the branch HEAD names now, as reconcile's HEAD reads it.
                self.ref = _head_branch(repo) if branch == HEAD else _branch_ref(branch)
        except NotGitRepository as exc:
            raise NotARepository(str(path)) from exc
        self._changed = threading.Event()
        self._observer: Any = None
        self.watching = False

    def start(self) -> None:
        """Watch the refs with watchdog; on failure, fall back to polling."""
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer

            changed = self._changed
            moves_branch = self._moves_branch

            class _Refs(FileSystemEventHandler):
                def on_any_event(self, event: FileSystemEvent) -> None:
                    if moves_branch(event):
                        changed.set()

            # Only where refs live: the git dir itself (packed-refs, HEAD) and refs/.
            # Watching objects/ too would follow every temporary directory a push
            # creates and removes, for nothing.
            observer = Observer()
            handler = _Refs()
            observer.schedule(handler, self._git_dir, recursive=False)
            observer.schedule(handler, str(Path(self._git_dir) / "refs"), recursive=True)
            observer.start()
        except (OSError, RuntimeError) as exc:
            log.warning("ref_watch_unavailable", path=self._git_dir, error=str(exc), polling=True)
            return
        self._observer = observer
        self.watching = True

    def _moves_branch(self, event: Any) -> bool:
        """Whether a file event may have moved the tracked branch.

        Only writes count: the daemon reads the ref itself every pass (open,
        close-without-write), and a wake on a read is a pass that wakes the
        next one. Only the branch's own ref and ``packed-refs`` count: a pass
        writes ``refs/notes/setpoint``, which must not start another pass.
        """
        if event.event_type not in _WRITES:
            return False
        git_dir = os.path.normpath(self._git_dir)
        ref_file = os.path.join(git_dir, *self.ref.decode("utf-8").split("/"))
        packed = os.path.join(git_dir, "packed-refs")
        paths = (event.src_path, getattr(event, "dest_path", ""))
        touched = {os.path.normpath(os.fsdecode(p)) for p in paths if p}
        # git writes <ref>.lock and renames it over <ref>; a pack rewrites packed-refs.
        return bool(touched & {ref_file, ref_file + ".lock", packed, packed + ".lock"})

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self.watching = False

    def refresh(self) -> None:
        """Nothing to fetch: the refs are read directly."""

    def head(self) -> str | None:
        return _read_ref(self.path, self.ref)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return early (True) when a ref changed."""
        woke = self._changed.wait(seconds)
        self._changed.clear()
        return woke

    def wake(self) -> None:
        """End a ``wait`` now (the daemon is stopping)."""
        self._changed.set()

    def push_notes(self) -> None:
        """The notes are written into this repository itself: nothing to push."""


class RemoteSource:
    """A remote repository, fetched into a bare mirror at most every ``interval`` seconds."""

    def __init__(
        self, url: str, branch: str, mirror: str | Path, interval: float, clock: Any = None
    ) -> None:
        import time

        self.url = url
        self.branch = branch
        self.ref = _branch_ref(branch)
        self.interval = interval
        self._clock = clock or time.monotonic
        self._last_fetch: float | None = None
        self._woken = threading.Event()
        mirror = Path(mirror)
        if not (mirror / "objects").is_dir():
            mirror.mkdir(parents=True, exist_ok=True)
            Repo.init_bare(str(mirror)).close()
        self.path = str(mirror)
        self.watching = False

    def start(self) -> None:
        """Nothing to watch: remote refs are fetched."""

    def stop(self) -> None:
        """Nothing to stop."""

    def refresh(self, force: bool = False) -> bool:
        """Fetch the branch if the interval has passed; True when a fetch happened."""
        now = self._clock()
        if not force and self._last_fetch is not None and now - self._last_fetch < self.interval:
            return False
        self._last_fetch = now
        try:
            with Repo(self.path) as mirror:
                # The user's git configuration applies, as for git itself (and
                # for ``push_notes``): http.sslCAInfo, http.proxy, http.extraHeader, ...
                client, path = get_transport_and_path(self.url, config=mirror.get_config_stack())
                result = client.fetch(path, mirror)
                remote = result.refs
                if self.branch == HEAD:
                    # The branch the remote's HEAD names, as a clone would check out.
                    self.ref = Ref(result.symrefs.get(Ref(b"HEAD"), b"HEAD"))
                sha = remote.get(self.ref)
                if sha is None:
                    raise FetchError(self.url, f"no branch {self.branch!r} on the remote")
                mirror.refs[self.ref] = sha
                # Adopt the remote's notes once, so history survives a new mirror;
                # after that the mirror's notes are the newer ones (we write them).
                notes = remote.get(Ref(NOTES_REF))
                if notes is not None and Ref(NOTES_REF) not in mirror.refs:
                    mirror.refs[Ref(NOTES_REF)] = notes
        except (GitProtocolError, HangupException, OSError, NotGitRepository) as exc:
            raise FetchError(self.url, str(exc) or type(exc).__name__) from exc
        return True

    def head(self) -> str | None:
        return _read_ref(self.path, self.ref)

    def wait(self, seconds: float) -> bool:
        """Sleep until the next fetch is due or ``seconds`` pass, whichever is first."""
        due = (
            self.interval
            if self._last_fetch is None
            else (self._last_fetch + self.interval - self._clock())
        )
        self._woken.wait(max(0.0, min(seconds, due)))
        self._woken.clear()
        return False

    def wake(self) -> None:
        """End a ``wait`` now (the daemon is stopping)."""
        self._woken.set()

    def push_notes(self) -> None:
        """Send the mirror's ``refs/notes/setpoint`` back to the remote."""
        from dulwich import porcelain

        try:
            with Repo(self.path) as mirror:
                if Ref(NOTES_REF) not in mirror.refs:
                    return
                porcelain.push(
                    mirror,
                    self.url,
                    refspecs=[b"+" + NOTES_REF + b":" + NOTES_REF],
                    errstream=io.BytesIO(),
                    outstream=io.BytesIO(),
                )
        except (GitProtocolError, HangupException, OSError, porcelain.Error) as exc:
            raise FetchError(self.url, f"pushing notes: {exc}") from exc


Source = LocalSource | RemoteSource
