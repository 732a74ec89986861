"""The agent's cycle: poll the pointer, accept a verified manifest, run what is due.

One cycle (``Agent.run_once``):

1. A hook run that was in flight when a previous agent died counts as a failed
   attempt ("agent stopped during the run") and is due again at once.
2. Poll the pointer (conditional, one small request). A new pointer is
   accepted only whole: its generation must not go back (anti-rollback), and
   its manifest, every derived config and every attached file must fetch and
   verify. Otherwise the last good manifest stays, and the report says why.
3. For each deployment of the manifest, in order: nothing if its digest already
   succeeded here; else CREATE (nothing ever succeeded for it) or UPDATE. An
   action outside the entry's ``actions``, or that the component has no config
   for, is recorded COMPLETE without running. A failure is retried after a
   backoff, up to ``max_attempts``; it never stops the other deployments.
4. Deployments gone from the manifest run their DELETE config (from the kept
   copy), in reverse of their previous order, and are then forgotten.

The state on disk is written before a run (in-flight marker) and after it
(result), and the report is rewritten after every change of state.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from setpoint.agentshim import __version__
from setpoint.agentshim.contract import HookResult
from setpoint.agentshim.errors import AgentError, FilesError, RefusedDocument
from setpoint.agentshim.files import config_files, materialize
from setpoint.agentshim.hooks import HookRunner, tail
from setpoint.agentshim.processes import boot_id, kill_leftover, process_start
from setpoint.agentshim.relocate import MAX_HOPS, RelocationError, describe, open_location
from setpoint.agentshim.state import (
    AgentState,
    DeploymentState,
    Failure,
    InFlight,
    Layout,
    cache_config,
    cached_config,
    load_state,
    save_state,
)
from setpoint.agentshim.trust import Trust
from setpoint.store import (
    DeploymentReport,
    DigestMismatch,
    InvalidDigest,
    InvalidDocument,
    Manifest,
    ManifestEntry,
    NotFound,
    PermissionDenied,
    Pointer,
    Report,
    Store,
    StoreError,
    TransientError,
    config_for_action,
)
from setpoint.store.capabilities import Capabilities
from setpoint.store.documents import loads_object
from setpoint.store.errors import BundleError
from setpoint.store.http import CapabilityStore

log = structlog.get_logger("setpoint.agent")

MAX_RETRY_DELAY = 300.0
# The report is rewritten at least this often (seconds) even when nothing
# changed, so the controller can tell a silent agent (unreachable after three
# missed beats) from an idle one. One small PUT per server per beat: 288 a day.
DEFAULT_HEARTBEAT = 300.0
JITTER = 0.1
REASON_AGENT_STOPPED = "agent stopped during the run"
# Errors that mean "what was published is wrong", as opposed to "the store is unreachable".
_VERIFICATION_ERRORS = (
    DigestMismatch,
    InvalidDigest,
    InvalidDocument,
    BundleError,
    RefusedDocument,
    FilesError,
)


def iso(t: float) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``."""
    dt = datetime.fromtimestamp(t, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def retry_delay(backoff: float, failures: int) -> float:
    """Delay after the n-th failure: ``backoff * 2**(n-1)``, capped."""
    return float(min(backoff * 2 ** max(failures - 1, 0), MAX_RETRY_DELAY))


@dataclass
class CycleResult:
    """What one cycle did, and how the agent stands after it."""

    generation: int
    manifest: str | None
    ran: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    error: str | None = None
    store_error: str | None = None
    stopped: bool = False

    @property
    def exit_code(self) -> int:
        """3: the store could not be read or written; 1: a deployment is FAILED or the
        pointer was refused; 0: converged as far as the rules allow."""
        if self.store_error is not None:
            return 3
        if self.failing or self.error is not None:
            return 1
        return 0


def _check_config(digest: str, derived: dict[str, Any]) -> None:
    """The shape a derived config needs before a hook may see it."""
    what = f"config {digest}"
    if not isinstance(derived.get("group", "script"), str):
        raise RefusedDocument(what, "'group' is not a string")
    for key in ("inputs", "outputs"):
        items = derived.get(key) or []
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
        ):
            raise RefusedDocument(what, f"{key!r} is not a list of named items")
    if not isinstance(derived.get("options") or {}, dict):
        raise RefusedDocument(what, "'options' is not a map")
    if derived.get("group") == "component":
        body = derived.get("config")
        configs = body.get("configs") if isinstance(body, dict) else None
        if not isinstance(configs, list) or not all(
            isinstance(c, dict)
            and isinstance(c.get("tool"), str)
            and isinstance(c.get("actions"), list)
            for c in configs
        ):
            raise RefusedDocument(what, "a component's config needs 'configs': [{actions, tool}]")
    config_files(derived)


def _unsettled(dep: DeploymentState) -> bool:
    """The last CREATE or UPDATE here failed, whatever its digest.

    After a rollback the manifest names the digest that succeeded before the
    failed change; the failed run may have left the server half changed, so
    that digest's UPDATE runs again rather than counting as done.
    """
    report = dep.report
    return (
        report is not None and report.status == "FAILED" and report.action in ("CREATE", "UPDATE")
    )


class Agent:
    """The agent of one server, over one state dir."""

    def __init__(
        self,
        store: Store,
        server: str,
        state_dir: str | Path,
        hooks_dir: str | Path | None = None,
        max_attempts: int = 3,
        retry_backoff: float = 5.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        stop_event: threading.Event | None = None,
        trust: Trust | None = None,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
    ) -> None:
        """``trust`` None accepts unsigned pointers (tests, development); the CLI
        always passes one."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.server = server
        self.layout = Layout(Path(state_dir).absolute())
        self.hooks_dir = Path(hooks_dir) if hooks_dir else self.layout.root / "hooks"
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.clock = clock
        self.sleep = sleep
        self.stop = stop_event or threading.Event()
        self.rng = random.Random()
        self.runner = HookRunner(self.layout, self.hooks_dir.absolute(), self.stop)
        self.layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state: AgentState = load_state(self.layout)
        self.trust = trust
        self.heartbeat = heartbeat
        self._published_at: float | None = None
        self._resume_location()
        self._resume_capabilities()
        self.log = log.bind(server=server)
        self._published: dict[str, Any] | None = None
        self._report_error: str | None = None
        self._result = CycleResult(self.state.generation, self.state.manifest)

    # -- the loop ------------------------------------------------------------------

    def run_forever(self, interval: float, stop_event: threading.Event) -> None:
        """Run cycles every ``interval`` seconds (jittered ±10%) until ``stop_event``.

        Store errors never end the loop: the last good configs keep running.
        """
        self.stop = self.runner.stop = stop_event
        self.log.info("agent_started", interval=interval, state_dir=str(self.layout.root))
        while not stop_event.is_set():
            try:
                self.run_once()
            except Exception as exc:
                self.log.exception("cycle_crashed", error=str(exc))
            if stop_event.is_set():
                break
            self.sleep(self.next_delay(interval))
        self.log.info("agent_stopped")

    def next_delay(self, interval: float) -> float:
        """The jittered interval, shortened when a retry falls due before it."""
        delay = interval * self.rng.uniform(1 - JITTER, 1 + JITTER)
        due = [
            d.failure.retry_at
            for d in self.state.deployments.values()
            if d.failure is not None
            and d.failure.retry_at is not None
            and not d.failure.final
            and d.failure.config == d.entry.config
        ]
        if due:
            until = min(due) - self.clock()
            delay = max(min(delay, until), min(1.0, delay))
        return delay

    # -- one cycle -----------------------------------------------------------------

    def run_once(self) -> CycleResult:
        self._result = CycleResult(self.state.generation, self.state.manifest)
        if self.state.in_flight is not None:
            self._recover_in_flight(self.state.in_flight)
        try:
            self._poll()
        except StoreError as exc:
            self._result.store_error = f"cannot read the pointer: {exc}"
            self.log.warning("store_error", error=str(exc))

        manifest = self.state.manifest_doc
        if manifest is not None:
            for entry in manifest.deployments:
                if self.stop.is_set():
                    break
                self._converge(entry)
            self._remove_gone(manifest)

        self._publish()
        result = self._result
        result.generation, result.manifest = self.state.generation, self.state.manifest
        result.error = self.state.error
        result.stopped = self.stop.is_set()
        if self._report_error is not None and result.store_error is None:
            result.store_error = f"cannot write the report: {self._report_error}"
        result.failing = sorted(
            name
            for name, d in self.state.deployments.items()
            if d.report is not None and d.report.status == "FAILED"
        )
        return result

    # -- pointer and manifest ----------------------------------------------------------

    def _poll(self, hops: int = 0) -> None:
        state = self.state
        try:
            got = self.store.poll_pointer(self.server, state.etag)
        except NotFound:
            self.log.debug("no_pointer")
            return
        if got is None:
            return
        pointer, etag = got
        refusal = self._refusal(pointer) or self._renew_capabilities(pointer)
        if refusal is not None:
            # Remember the etag: the same refused pointer is not fetched again.
            state.error, state.etag = refusal, etag
            self._save()
            self.log.error(
                "pointer_refused",
                generation=pointer.generation,
                manifest=pointer.manifest,
                error=refusal,
            )
            return
        if pointer.moved_to is not None:
            self._follow(pointer, hops)
            return
        if pointer.generation == state.generation:
            state.etag, state.error = etag, None
            self._save()
            return
        try:
            manifest, configs = self._fetch(pointer)
        except (StoreError, AgentError) as exc:
            # The etag is not kept: the next cycle fetches again.
            state.error = (
                f"pointer generation {pointer.generation} (manifest {pointer.manifest}) "
                f"not accepted: {exc}"
            )
            self._save()
            event = "pointer_unverified" if isinstance(exc, _VERIFICATION_ERRORS) else "store_error"
            if isinstance(exc, (TransientError, PermissionDenied)):
                self._result.store_error = f"cannot fetch generation {pointer.generation}: {exc}"
            self.log.error(
                event, generation=pointer.generation, manifest=pointer.manifest, error=str(exc)
            )
            return
        self._accept(pointer, etag, manifest, configs)

    def _resume_location(self) -> None:
        """After a restart, poll where the fleet moved, whatever --store or --bootstrap say."""
        if self.state.location is None:
            return
        try:
            self.store = open_location(self.server, self.state.location)
        except RelocationError as exc:
            log.error("saved_location_unusable", server=self.server, error=str(exc))
            return
        log.info("store_relocated", server=self.server, store=describe(self.state.location))

    def _follow(self, redirect: Pointer, hops: int) -> None:
        """Switch to the store a verified ``moved_to`` names, once its pointer verifies.

        Until then the agent stays where it is (the etag is not kept, so the
        next cycle tries again) and the report there says why.
        """
        assert redirect.moved_to is not None
        state = self.state
        where = describe(redirect.moved_to)
        # The redirect is verified: the keys it carries are the ones to check with.
        learned = state.trusted_keys
        if self.trust is not None and not self.trust.allow_unsigned and redirect.trust:
            learned = dict(redirect.trust)
        try:
            if hops >= MAX_HOPS:
                raise RelocationError(f"more than {MAX_HOPS} moves in a row")
            target = open_location(self.server, redirect.moved_to)
            got = target.poll_pointer(self.server, None)
            if got is None:
                raise RelocationError(f"{where} answered 304 to an unconditional read")
            there = got[0]
            why = self.trust.check(there, learned) if self.trust is not None else None
            if why is None and there.server != self.server:
                why = f"it names server {there.server!r}"
            if why is None and there.generation <= redirect.generation:
                why = (
                    f"its generation {there.generation} is not above the redirect's "
                    f"{redirect.generation}"
                )
            if why is not None:
                raise RelocationError(f"the pointer at {where} is refused: {why}")
        except (StoreError, AgentError) as exc:
            state.error = f"pointer generation {redirect.generation} moves to {where}: {exc}"
            self._save()
            if isinstance(exc, TransientError | PermissionDenied | NotFound):
                self._result.store_error = state.error
            self.log.error("move_not_followed", to=where, error=str(exc))
            return
        state.location = dict(redirect.moved_to)
        state.capabilities = redirect.moved_to.get("capabilities")
        state.trusted_keys = learned
        state.etag, state.error = None, None
        self._save()
        self.store = target
        # Report there at once, even if nothing else changed: that is the confirmation.
        self._published = None
        self.log.info("store_moved", to=where, generation=redirect.generation)
        self._poll(hops + 1)

    def _resume_capabilities(self) -> None:
        """After a restart, use the newest URLs a pointer gave, not the bootstrap's."""
        if not isinstance(self.store, CapabilityStore) or self.state.capabilities is None:
            return
        try:
            saved = Capabilities.from_dict(self.state.capabilities)
        except StoreError:
            return
        if saved.expires_at >= self.store.capabilities.expires_at:
            self.store.renew(saved)

    def _renew_capabilities(self, pointer: Pointer) -> str | None:
        """Adopt the URLs a verified pointer carries; the reason if they are unusable."""
        if pointer.capabilities is None or not isinstance(self.store, CapabilityStore):
            return None
        try:
            caps = Capabilities.from_dict(pointer.capabilities)
        except StoreError as exc:
            return f"refused pointer generation {pointer.generation}: {exc}"
        self.store.renew(caps)
        self.state.capabilities = caps.to_dict()
        return None

    def _refusal(self, pointer: Pointer) -> str | None:
        state = self.state
        if self.trust is not None:
            why = self.trust.check(pointer, state.trusted_keys)
            if why is not None:
                return f"refused pointer generation {pointer.generation}: {why}"
        if pointer.server != self.server:
            return (
                f"refused pointer generation {pointer.generation}: "
                f"it names server {pointer.server!r}, not {self.server!r}"
            )
        if pointer.generation < state.generation:
            return (
                f"refused pointer generation {pointer.generation} (manifest {pointer.manifest}): "
                f"lower than generation {state.generation} already accepted (anti-rollback); "
                f"still running generation {state.generation}"
            )
        if pointer.generation == state.generation and pointer.manifest != state.manifest:
            return (
                f"refused pointer generation {pointer.generation} (manifest {pointer.manifest}): "
                f"generation {state.generation} was accepted with manifest {state.manifest}; "
                "a new manifest needs a new generation"
            )
        return None

    def _fetch(self, pointer: Pointer) -> tuple[Manifest, dict[str, dict[str, Any]]]:
        """The manifest and every config it names, verified, cached, files in place."""
        manifest = Manifest.from_dict(self.store.get_json_blob(pointer.manifest, "manifest"))
        configs: dict[str, dict[str, Any]] = {}
        for entry in manifest.deployments:
            if entry.config not in configs:
                configs[entry.config] = self._load_config(entry.config)
        for digest, derived in configs.items():
            materialize(self.store, self.layout, digest, derived, manifest.bundles)
        return manifest, configs

    def _load_config(self, digest: str) -> dict[str, Any]:
        """A derived config from the local cache (re-verified) or from the store."""
        data = cached_config(self.layout, digest)
        if data is None:
            data = self.store.get_blob(digest)
            derived = loads_object(data, f"config {digest}")
            _check_config(digest, derived)
            cache_config(self.layout, digest, data)
        else:
            derived = loads_object(data, f"config {digest}")
            _check_config(digest, derived)
        return derived

    def _accept(
        self, pointer: Pointer, etag: str, manifest: Manifest, configs: dict[str, Any]
    ) -> None:
        state = self.state
        state.generation, state.manifest, state.manifest_doc = (
            pointer.generation,
            pointer.manifest,
            manifest,
        )
        state.etag, state.error = etag, None
        if self.trust is not None and not self.trust.allow_unsigned and pointer.trust:
            state.trusted_keys = dict(pointer.trust)
        for index, entry in enumerate(manifest.deployments):
            dep = state.deployments.get(entry.name)
            if dep is not None:
                dep.entry, dep.position = entry, (pointer.generation, index)
        self._save()
        self._prune()
        self.log.info(
            "pointer_accepted",
            generation=pointer.generation,
            manifest=pointer.manifest,
            commit=pointer.commit,
            deployments=len(manifest.deployments),
            configs=len(configs),
        )

    def _prune(self) -> None:
        """Drop cached configs and files no deployment can need any more."""
        keep = set()
        if self.state.manifest_doc is not None:
            keep |= {e.config for e in self.state.manifest_doc.deployments}
        for dep in self.state.deployments.values():
            keep.add(dep.entry.config)
            if dep.succeeded:
                keep.add(dep.succeeded)
        keep_hex = {d.removeprefix("blake3:") for d in keep}
        for path in (
            list(self.layout.configs.glob("*.json")) if self.layout.configs.is_dir() else []
        ):
            if path.stem not in keep_hex:
                path.unlink(missing_ok=True)
        if self.layout.files.is_dir():
            for path in self.layout.files.iterdir():
                if path.name not in keep_hex:
                    shutil.rmtree(path, ignore_errors=True)

    # -- deciding and running ------------------------------------------------------------

    def _converge(self, entry: ManifestEntry) -> None:
        """The entry's digest first (CREATE or UPDATE), then its state
        (SUSPEND or RESUME), then a custom action whose token is new."""
        dep = self.state.deployments.get(entry.name)
        if dep is None or dep.succeeded != entry.config or _unsettled(dep):
            self._converge_config(entry)
            dep = self.state.deployments.get(entry.name)
            if dep is None or dep.succeeded != entry.config or _unsettled(dep):
                return
        if dep.state != entry.state:
            action = "SUSPEND" if entry.state == "suspended" else "RESUME"
            if not self._extra(dep, entry, action, None):
                return
        if entry.run is not None and dep.token != entry.run[1]:
            self._extra(dep, entry, entry.run[0], entry.run[1])

    def _extra(
        self, dep: DeploymentState, entry: ManifestEntry, action: str, token: str | None
    ) -> bool:
        """SUSPEND, RESUME or a custom action on a deployment whose digest
        succeeded here. Its outputs stay those of the config's last run."""
        failure = self._failure(dep, entry.config, action, token, entry.retry)
        if failure is not None and not self._due(failure):
            return False
        try:
            derived = self._load_config(entry.config)
        except (StoreError, AgentError) as exc:
            self._attempt_failed(dep, entry, action, failure, f"config unavailable: {exc}")
            return False
        tool_config = config_for_action(derived, action)
        custom = token is not None
        if (not custom and action not in entry.actions) or tool_config is None:
            why = (
                f"the component has no {action} config"
                if tool_config is None
                else f"{action} is not among the deployment's actions ({', '.join(entry.actions)})"
            )
            self._extra_done(dep, entry, action, token, f"{why}: nothing run")
            return True
        result = self._run(dep, entry, action, derived, tool_config, failure)
        if result is None or not result.ok:
            return False
        self._extra_done(dep, entry, action, token, None)
        return True

    def _extra_done(
        self,
        dep: DeploymentState,
        entry: ManifestEntry,
        action: str,
        token: str | None,
        reason: str | None,
    ) -> None:
        now = iso(self.clock())
        if token is None:
            dep.state = entry.state
        else:
            dep.token = token
        dep.failure = None
        base = dep.report or DeploymentReport(entry.name, entry.config, action, "COMPLETE")
        dep.report = replace(
            base,
            action=action,
            status="COMPLETE",
            outputs=dict(dep.outputs),
            started_at=base.started_at if reason is None else now,
            finished_at=base.finished_at if reason is None else now,
            reason=reason,
            retry_at=None,
            final=True,
        )
        self._result.completed.append(entry.name)
        self.log.info("deployment_complete", deployment=entry.name, action=action, token=token)
        self._commit()

    def _converge_config(self, entry: ManifestEntry) -> None:
        state = self.state
        dep = state.deployments.get(entry.name)
        action = "UPDATE" if dep is not None and dep.succeeded else "CREATE"
        if dep is None:
            position = (state.generation, self._index(entry.name))
            dep = state.deployments[entry.name] = DeploymentState(entry, position)
        failure = self._failure(dep, entry.config, action, None, entry.retry)
        if failure is not None and not self._due(failure):
            return
        try:
            derived = self._load_config(entry.config)
        except (StoreError, AgentError) as exc:
            self._attempt_failed(dep, entry, action, failure, f"config unavailable: {exc}")
            return
        if action not in entry.actions:
            self._skip(
                dep,
                entry,
                action,
                f"{action} is not among the deployment's actions "
                f"({', '.join(entry.actions)}): nothing run",
            )
            return
        tool_config = config_for_action(derived, action)
        if tool_config is None:
            self._skip(dep, entry, action, f"the component has no {action} config: nothing run")
            return
        result = self._run(dep, entry, action, derived, tool_config, failure)
        if result is None:
            return
        if result.ok:
            dep.succeeded, dep.outputs, dep.failure = entry.config, dict(result.outputs), None
            assert dep.report is not None
            dep.report = replace(dep.report, status="COMPLETE", final=True)
            self._result.completed.append(entry.name)
            self.log.info(
                "deployment_complete",
                deployment=entry.name,
                config=entry.config,
                action=action,
                attempts=dep.report.attempts,
            )
            self._commit()

    def _remove_gone(self, manifest: Manifest) -> None:
        """DELETE what left the manifest, last-deployed first, then forget it."""
        present = {e.name for e in manifest.deployments}
        gone = sorted(
            ((name, d) for name, d in self.state.deployments.items() if name not in present),
            key=lambda item: item[1].position,
            reverse=True,
        )
        for name, dep in gone:
            if self.stop.is_set():
                return
            entry = dep.entry
            if "DELETE" not in entry.actions:
                self._forget(name, "DELETE is not among the deployment's actions")
                continue
            failure = self._failure(dep, entry.config, "DELETE", None, entry.retry)
            if failure is not None and not self._due(failure):
                continue
            try:
                derived = self._load_config(entry.config)
            except (StoreError, AgentError) as exc:
                self._attempt_failed(dep, entry, "DELETE", failure, f"config unavailable: {exc}")
                continue
            tool_config = config_for_action(derived, "DELETE")
            if tool_config is None:
                self._forget(name, "the component has no DELETE config")
                continue
            result = self._run(dep, entry, "DELETE", derived, tool_config, failure)
            if result is not None and result.ok:
                self._forget(name, "DELETE complete")

    def _index(self, name: str) -> int:
        manifest = self.state.manifest_doc
        names = [e.name for e in manifest.deployments] if manifest else []
        return names.index(name) if name in names else len(names)

    @staticmethod
    def _failure(
        dep: DeploymentState,
        config: str,
        action: str,
        token: str | None = None,
        retry: int = 0,
    ) -> Failure | None:
        """Failed attempts at this (digest, action, token, retry count); any new
        one of these starts over."""
        f = dep.failure
        if f is not None and (f.config, f.action, f.token, f.retry) == (
            config,
            action,
            token,
            retry,
        ):
            return f
        return None

    def _due(self, failure: Failure) -> bool:
        if failure.final:
            return False
        return failure.retry_at is None or failure.retry_at <= self.clock()

    def _skip(self, dep: DeploymentState, entry: ManifestEntry, action: str, reason: str) -> None:
        now = iso(self.clock())
        outputs = dict(dep.outputs) if action == "UPDATE" else {}
        dep.succeeded, dep.outputs, dep.failure = entry.config, outputs, None
        dep.report = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action=action,
            status="COMPLETE",
            outputs=outputs,
            started_at=now,
            finished_at=now,
            reason=reason,
            final=True,
        )
        self._result.completed.append(entry.name)
        self.log.info(
            "deployment_skipped",
            deployment=entry.name,
            config=entry.config,
            action=action,
            reason=reason,
        )
        self._commit()

    def _document(
        self,
        entry: ManifestEntry,
        action: str,
        derived: dict[str, Any],
        tool: str,
        config: Any,
        files_dir: Path | None,
    ) -> dict[str, Any]:
        """Heat's hook document: the derived config plus the ``deploy_*`` inputs."""
        deploy = [
            ("deploy_server_id", self.server),
            ("deploy_action", action),
            ("deploy_stack_id", entry.stack),
            ("deploy_resource_name", entry.deployment),
            ("deploy_signal_transport", "NO_SIGNAL"),
        ]
        if files_dir is not None:
            deploy.append(("setpoint_files_dir", str(files_dir)))
        inputs = [dict(i) for i in derived.get("inputs") or []]
        inputs += [{"name": n, "type": "String", "value": v} for n, v in deploy]
        return {
            "id": entry.config,
            "name": derived.get("name", entry.deployment),
            "group": tool,
            "config": config,
            "inputs": inputs,
            "outputs": [
                dict(o) for o in derived.get("outputs") or [] if o.get("name") not in DEPLOY_OUTPUTS
            ],
            "options": dict(derived.get("options") or {}),
        }

    def _run(
        self,
        dep: DeploymentState,
        entry: ManifestEntry,
        action: str,
        derived: dict[str, Any],
        tool_config: tuple[str, Any],
        failure: Failure | None,
    ) -> HookResult | None:
        """One attempt: in-flight marker and IN_PROGRESS, the hook, the logs.

        A failure is recorded here; a success is left to the caller to record
        (and commit). Returns None when the run was aborted because the agent is
        stopping (not counted as an attempt).
        """
        attempts = (failure.attempts if failure else 0) + 1
        started = self.clock()
        self.state.in_flight = InFlight(
            entry.name, entry.config, action, started, boot_id=boot_id()
        )
        dep.report = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action=action,
            status="IN_PROGRESS",
            outputs={},
            attempts=attempts,
            started_at=iso(started),
        )
        self._result.ran.append(entry.name)
        self.log.info(
            "deployment_started",
            deployment=entry.name,
            config=entry.config,
            action=action,
            tool=tool_config[0],
            attempt=attempts,
        )
        self._commit()

        result = self._hook(entry, action, derived, tool_config)
        finished = self.clock()
        self._keep_logs(entry.name, result)
        dep.report = replace(
            dep.report,
            outputs=dict(result.outputs),
            stdout_tail=tail(result.stdout),
            stderr_tail=tail(result.stderr),
            exit_code=result.exit_code,
            finished_at=iso(finished),
        )
        if result.aborted:
            self.state.in_flight = None
            dep.report = replace(
                dep.report, status="FAILED", reason=result.reason, attempts=attempts - 1
            )
            self.log.warning("deployment_aborted", deployment=entry.name, reason=result.reason)
            self._commit()
            return None
        if not result.ok:
            self._record_failure(dep, entry, action, attempts, finished, result.reason)
            return result
        self.state.in_flight = None
        return result

    def _hook(
        self,
        entry: ManifestEntry,
        action: str,
        derived: dict[str, Any],
        tool_config: tuple[str, Any],
    ) -> HookResult:
        tool, config = tool_config
        try:
            bundles = self.state.manifest_doc.bundles if self.state.manifest_doc else {}
            files_dir = materialize(self.store, self.layout, entry.config, derived, bundles)
        except (StoreError, AgentError) as exc:
            return HookResult(False, reason=f"cannot materialize the config's files: {exc}")
        document = self._document(entry, action, derived, tool, config, files_dir)

        def on_start(pid: int) -> None:
            flight = self.state.in_flight
            if flight is not None:
                flight.pid, flight.pid_start = pid, process_start(pid)
                self._save()

        result = self.runner.run(
            document, deployment=entry.name, timeout=entry.timeout, on_start=on_start
        )
        result = _with_deploy_outputs(derived, result)
        if result.ok:
            for output in derived.get("outputs") or []:
                name = output["name"]
                value = result.outputs.get(name)
                if output.get("error_output") and value not in (None, ""):
                    text = value if isinstance(value, str) else repr(value)
                    if len(text) > 200:
                        text = text[:200] + "..."
                    return replace(
                        result, ok=False, reason=f"error output {name!r} is set: {text!r}"
                    )
        return result

    def _keep_logs(self, name: str, result: HookResult) -> None:
        """The full stdout and stderr of the last run, for debugging on the server."""
        try:
            for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                path = self.layout.log_path(name, stream)
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.write_text(text)
        except OSError as exc:
            self.log.warning("log_write_failed", deployment=name, error=str(exc))

    def _attempt_failed(
        self,
        dep: DeploymentState,
        entry: ManifestEntry,
        action: str,
        failure: Failure | None,
        reason: str,
    ) -> None:
        """A failed attempt that never reached a hook (e.g. the config is unavailable)."""
        now = self.clock()
        dep.report = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action=action,
            status="FAILED",
            started_at=iso(now),
        )
        self._record_failure(
            dep, entry, action, (failure.attempts if failure else 0) + 1, now, reason
        )

    def _record_failure(
        self,
        dep: DeploymentState,
        entry: ManifestEntry,
        action: str,
        attempts: int,
        finished: float,
        reason: str | None,
    ) -> None:
        final = attempts >= self.max_attempts
        retry_at = None if final else finished + retry_delay(self.retry_backoff, attempts)
        token = entry.run[1] if entry.run is not None and entry.run[0] == action else None
        dep.failure = Failure(
            entry.config, action, attempts, retry_at, final, token=token, retry=entry.retry
        )
        if action == "DELETE":
            # Half-deleted is not the state that succeeded: if it comes back, create it.
            dep.succeeded = None
        assert dep.report is not None
        dep.report = replace(
            dep.report,
            status="FAILED",
            attempts=attempts,
            finished_at=dep.report.finished_at or iso(finished),
            reason=reason,
            retry_at=None if retry_at is None else iso(retry_at),
            final=final,
        )
        self.state.in_flight = None
        self._result.failed.append(entry.name)
        self.log.warning(
            "deployment_failed",
            deployment=entry.name,
            config=entry.config,
            action=action,
            attempts=attempts,
            final=final,
            retry_at=dep.report.retry_at,
            reason=reason,
        )
        self._commit()

    def _forget(self, name: str, reason: str) -> None:
        self.state.deployments.pop(name, None)
        self.state.in_flight = None
        self._result.deleted.append(name)
        self.log.info("deployment_forgotten", deployment=name, reason=reason)
        self._commit()

    def _recover_in_flight(self, flight: InFlight) -> None:
        """A run the previous agent never finished: a failed attempt, due again now."""
        if flight.pid is not None and kill_leftover(flight.pid, flight.pid_start, flight.boot_id):
            self.log.warning("leftover_hook_killed", deployment=flight.deployment, pid=flight.pid)
        dep = self.state.deployments.get(flight.deployment)
        if dep is None:
            self.state.in_flight = None
            self._save()
            return
        report = dep.report
        if report is not None and (report.config, report.action) == (flight.config, flight.action):
            attempts = max(report.attempts, 1)
        else:
            prior = self._failure(dep, flight.config, flight.action)
            attempts = (prior.attempts if prior else 0) + 1
        final = attempts >= self.max_attempts
        dep.failure = Failure(flight.config, flight.action, attempts, None, final)
        if flight.action == "DELETE":
            dep.succeeded = None
        dep.report = DeploymentReport(
            name=flight.deployment,
            config=flight.config,
            action=flight.action,
            status="FAILED",
            attempts=attempts,
            started_at=iso(flight.started_at),
            reason=REASON_AGENT_STOPPED,
            final=final,
        )
        self.state.in_flight = None
        self.log.warning(
            "run_interrupted",
            deployment=flight.deployment,
            config=flight.config,
            action=flight.action,
            attempts=attempts,
            final=final,
        )
        self._commit()

    # -- persistence -------------------------------------------------------------------

    def _save(self) -> None:
        save_state(self.layout, self.state)

    def _commit(self) -> None:
        """Record the state on disk, then tell the store."""
        self._save()
        self._publish()

    def report(self) -> Report:
        return Report(
            server=self.server,
            generation=self.state.generation,
            manifest=self.state.manifest,
            updated_at=iso(self.clock()),
            deployments={
                name: replace(d.report, state=d.state, token=d.token)
                for name, d in self.state.deployments.items()
                if d.report is not None
            },
            error=self.state.error,
            agent_version=__version__,
            heartbeat=self.heartbeat,
        )

    def _publish(self) -> None:
        """Write the report when it differs from the last one written."""
        report = self.report()
        body = report.to_dict()
        body.pop("updated_at")
        now = self.clock()
        beat_due = (
            self.heartbeat is not None
            and self._published_at is not None
            and now - self._published_at >= self.heartbeat
        )
        if body == self._published and not beat_due:
            return
        try:
            self.store.write_report(report)
        except StoreError as exc:
            self._report_error = str(exc)
            self.log.warning("report_write_failed", error=str(exc))
            return
        self._published, self._report_error = body, None
        self._published_at = now


__all__ = ["Agent", "CycleResult", "iso", "retry_delay"]


# Heat's attributes of every deployment, reported as outputs when the derived
# config declares them (as Heat templates' configs do): the hook never sets them.
DEPLOY_OUTPUTS = ("deploy_stdout", "deploy_stderr", "deploy_status_code")


def _with_deploy_outputs(derived: dict[str, Any], result: HookResult) -> HookResult:
    declared = {o.get("name") for o in derived.get("outputs") or []}
    if not declared & set(DEPLOY_OUTPUTS):
        return result
    values = {
        "deploy_stdout": result.stdout,
        "deploy_stderr": result.stderr,
        "deploy_status_code": result.exit_code,
    }
    extra = {k: v for k, v in values.items() if k in declared}
    return replace(result, outputs={**result.outputs, **extra})
