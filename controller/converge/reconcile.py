"""One reconcile pass, and the loop that repeats it until the fleet converges.

A pass: load the branch head from git, list ``agents/`` with each object's
version and read the pointers and reports that changed since the last pass
(the rest come from an in-process cache), compute the desired state, publish
what changed, and assess how far the fleet is. The controller keeps no state
of its own: kill it anywhere, and the next pass starts from what git and the
store say (the cache only saves reads: a new process reads everything once).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import structlog

from setpoint.controller.converge import heat_agent
from setpoint.controller.converge.preflight import preflight_publication
from setpoint.controller.converge.preflight_requests import (
    PreflightRequest,
    merge_requests,
    read_requests,
    write_request,
)
from setpoint.controller.converge.publish import PointerPolicy, PublishResult, publish
from setpoint.controller.converge.runs import Masker, masked_reasons
from setpoint.controller.converge.trust import trusted_pointers
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import DEFAULT_CONVERGE_ROUNDS, Model, NotifyTarget
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS, entry_result
from setpoint.controller.rollout.contextualize import Rounds
from setpoint.controller.rollout.desired import DesiredState, Waiting, compute_desired
from setpoint.controller.rollout.gate import Gate
from setpoint.controller.rollout.ledger import Ledger, read_ledger, write_ledger
from setpoint.controller.wording import counted
from setpoint.store.base import AGENTS, Store, pointer_key, report_key
from setpoint.store.digest import short
from setpoint.store.documents import Manifest, ManifestEntry, Pointer, Report, is_server_name
from setpoint.store.errors import DigestMismatch, InvalidDocument, NotFound
from setpoint.store.lease import Lease

log = structlog.get_logger("setpoint.reconcile")

# How long a plan's preflight request outlives its wait: a plan killed while
# it waits leaves a request that stops counting this long after its timeout.
REQUEST_MARGIN = 60.0


@dataclass(frozen=True)
class ServerProgress:
    server: str
    converged: bool
    failed: list[str]
    pending: list[str]
    # The generation the server's report answers (None: no valid report).
    reported_generation: int | None = None
    # Deployments whose applied digest the agent reports drifted (a drift check).
    drifted: list[str] = field(default_factory=list)


@dataclass
class PassOutcome:
    commit: str
    desired: DesiredState
    published: PublishResult
    servers: dict[str, ServerProgress] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    # server -> why its pointer or report could not be read ("invalid report: ...")
    invalid: dict[str, str] = field(default_factory=dict)
    # The reports this pass read (metrics and notifications look at them again).
    reports: dict[str, Report] = field(default_factory=dict)
    # Who the commit's notifications.yaml tells of events.
    notifications: tuple[NotifyTarget, ...] = ()

    @property
    def waiting(self) -> list[Waiting]:
        return self.desired.waiting

    @property
    def failed(self) -> list[str]:
        stopped = list(self.desired.failures) + self.desired.left_out
        return stopped + [f"{s.server}: {f}" for s in self.servers.values() for f in s.failed]

    @property
    def rollouts(self) -> dict[str, dict[str, Any]]:
        """Rollouts in flight after this pass: progress per deployment."""
        return {name: r.to_dict() for name, r in self.ledger.rollouts.items()}

    @property
    def converged(self) -> bool:
        return self.desired.complete and all(s.converged for s in self.servers.values())

    def summary(self) -> str:
        # A server still waiting for something of this commit (a later batch,
        # an upstream output) has not converged at it, whatever its report says
        # about what it was given before.
        behind = {w.server for w in self.waiting}
        done = sum(s.converged and name not in behind for name, s in self.servers.items())
        parts = [f"{done}/{counted(len(self.servers), 'server')} converged at {self.commit[:12]}"]
        if self.published.changed:
            parts.append(f"published {len(self.published.changed)}")
        in_batches: set[tuple[str, str]] = set()
        for name, rollout in sorted(self.ledger.rollouts.items()):
            p = rollout.progress
            if p and rollout.outcome == "rolling":
                parts.append(
                    f"{name} batch {p['batch']}/{p['batches']}: {len(p['done'])} done, "
                    f"{len(p['in_progress'])} in progress, {len(p['waiting'])} waiting"
                )
                in_batches.update((name, server) for server in p["waiting"])
        # Pairs a rollout holds for a later batch are told in its line above.
        others = [w for w in self.waiting if (w.deployment, w.server) not in in_batches]
        if others:
            parts.append(f"{len(others)} waiting")
        # Servers, not failure lines: a server with two failed deployments is
        # one failed server, and a halted rollout is said apart.
        failed = sum(1 for s in self.servers.values() if s.failed)
        if failed:
            parts.append(f"{failed} failed")
        drifted = sum(1 for s in self.servers.values() if s.drifted)
        if drifted:
            parts.append(f"{drifted} drifted")
        if self.desired.failures:
            parts.append(f"{counted(len(self.desired.failures), 'rollout')} stopped")
        if self.desired.left_out:
            parts.append(
                f"{counted(len(self.desired.left_out), 'rollout')} without servers "
                "whose preflight failed"
            )
        if self.invalid:
            parts.append(f"{len(self.invalid)} invalid")
        return ", ".join(parts)

    def awaiting(self, published: dict[str, int]) -> set[str]:
        """Servers whose report does not answer the generation ``published`` gave them."""
        return {
            server
            for server, generation in published.items()
            if server in self.servers
            and (self.servers[server].reported_generation or 0) < generation
        }

    def judged(self, published: dict[str, int]) -> tuple[list[str], bool]:
        """(failures, converged), counting a server only by a report that answers
        the generation ``published`` gave it: an older report tells what the
        agent did before it saw that pointer, not what it will do with it."""
        awaiting = self.awaiting(published)
        answering = [s for s in self.servers.values() if s.server not in awaiting]
        failed = list(self.desired.failures) + self.desired.left_out
        failed += [f"{s.server}: {f}" for s in answering for f in s.failed]
        converged = self.desired.complete and not awaiting and all(s.converged for s in answering)
        return failed, converged

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "converged": self.converged,
            "published": self.published.changed,
            "uploaded": len(self.published.uploaded),
            "waiting": [w.to_dict() for w in self.waiting],
            "failed": self.failed,
            "rollouts": self.rollouts,
            "invalid": dict(sorted(self.invalid.items())),
            "servers": {
                s.server: {
                    "converged": s.converged,
                    "failed": s.failed,
                    "pending": s.pending,
                    "drifted": s.drifted,
                }
                for s in self.servers.values()
            },
        }


def assess(
    server: str, manifest: Manifest, report: Report | None, invalid: str | None = None
) -> ServerProgress:
    """How far one server is with the manifest it was given.

    ``invalid`` says why the server's report could not be used, if it could not.
    """
    failed: list[str] = [invalid] if invalid else []
    # A server whose agent never answered has not converged on anything, even
    # when nothing is published to it yet (its deployments wait).
    pending: list[str] = [] if report is not None or invalid else ["never reported"]
    reported = report.deployments if report else {}
    if report is not None and report.error:
        failed.append(f"agent error: {report.error}")
    for entry in manifest.deployments:
        got = reported.get(entry.name)
        if got is None or got.config != entry.config:
            pending.append(f"{entry.name}: not yet run")
        elif got.status == "FAILED":
            if got.final:
                failed.append(f"{entry.name}: {got.reason or 'failed'}")
            else:
                pending.append(f"{entry.name}: failed, retry at {got.retry_at}")
        elif got.status != "COMPLETE":
            pending.append(f"{entry.name}: {got.status.lower()}")
        elif entry_result(entry, got) != "complete":
            pending.append(f"{entry.name}: {_what_is_due(entry)} not yet run")
    wanted = {e.name for e in manifest.deployments}
    for name, got in reported.items():
        if name in wanted:
            continue
        if got.status == "FAILED" and got.final:
            failed.append(f"{name}: delete failed: {got.reason or 'failed'}")
        else:
            pending.append(f"{name}: being deleted")
    drift = report.drift if report else {}
    return ServerProgress(
        server,
        not failed and not pending,
        failed,
        pending,
        reported_generation=report.generation if report else None,
        drifted=[
            e.name
            for e in manifest.deployments
            if (d := drift.get(e.name)) is not None
            and d.config == e.config
            and d.status == "drifted"
        ],
    )


def _generation(document: Pointer | Report | None) -> int:
    return document.generation if document is not None else 0


def _what_is_due(entry: ManifestEntry) -> str:
    if entry.run is not None:
        return f"{entry.run[0]} (token {entry.run[1]!r})"
    return "SUSPEND" if entry.state == "suspended" else "RESUME"


@dataclass
class _Fleet:
    """What one pass read of the fleet: pointers, reports, and why any is unusable."""

    servers: list[str]
    # The object version of each key under ``agents/``, from one listing.
    versions: dict[str, str]
    # server -> the pointer stored (None: none, or unreadable)
    stored: dict[str, Pointer | None] = field(default_factory=dict)
    # server -> the stored pointer if the controller trusts it
    pointers: dict[str, Pointer | None] = field(default_factory=dict)
    reports: dict[str, Report] = field(default_factory=dict)
    # server -> why its pointer, or its report, cannot be used
    bad_pointers: dict[str, str] = field(default_factory=dict)
    bad_reports: dict[str, str] = field(default_factory=dict)
    # server -> the highest generation seen anywhere for it
    seen: dict[str, int] = field(default_factory=dict)
    heat_servers: list[str] = field(default_factory=list)
    # manifest digest -> why it cannot be read
    manifest_errors: dict[str, str] = field(default_factory=dict)

    def previous(self, server: str, manifests: dict[str, Manifest]) -> Manifest | None:
        """The manifest the server's trusted pointer names (None: unknown or none)."""
        pointer = self.pointers.get(server)
        if pointer is None or server in self.bad_pointers:
            return None
        if pointer.manifest in self.manifest_errors:
            # What it was given cannot be known: as if its pointer were bad.
            problem = self.manifest_errors[pointer.manifest]
            self.bad_pointers[server] = f"invalid manifest {short(pointer.manifest)}: {problem}"
            return None
        return manifests[pointer.manifest]

    def invalid(self) -> dict[str, str]:
        """server -> why its pointer and/or report cannot be used."""
        return {
            s: "; ".join(p for p in (self.bad_pointers.get(s), self.bad_reports.get(s)) if p)
            for s in sorted({*self.bad_pointers, *self.bad_reports})
        }


@dataclass
class Reconciler:
    repo: GitRepo
    store: Store
    rev: str = "HEAD"
    clock: Callable[[], float] = time.time
    policy: PointerPolicy = field(default_factory=PointerPolicy)
    # Rounds a declared contextualization cycle may take (``--converge-rounds``).
    converge_rounds: int = DEFAULT_CONVERGE_ROUNDS
    # Heartbeats an agent may miss before it is unreachable (``--unreachable-after``).
    unreachable_after: float = UNREACHABLE_AFTER_BEATS
    # The lease this controller holds among replicas (``store.lease``): each write
    # of the pass is fenced by it. None: the only controller.
    lease: Lease | None = None
    # Manifests are immutable blobs: read each once per controller process.
    _manifests: dict[str, Manifest] = field(default_factory=dict, repr=False)
    # The last pointer and report read (or written) per server, with its version.
    # One listing of ``agents/`` per pass says which changed; only those are read
    # again. Only saves reads: a new process starts empty and reads everything.
    _pointers: dict[str, tuple[str, Pointer]] = field(default_factory=dict, repr=False)
    _reports: dict[str, tuple[str, Report]] = field(default_factory=dict, repr=False)
    # This pass: server -> generation of a pointer stored at its key but naming another.
    _misplaced: dict[str, int] = field(default_factory=dict, repr=False)
    # server -> the pointer object last verified or written by this controller.
    _verified: dict[str, Pointer] = field(default_factory=dict, repr=False)
    _verified_under: PointerPolicy | None = field(default=None, repr=False)
    # What Heat RandomString values derive from (``definitions.render_secret``).
    render_secret: bytes | None = field(default=None, repr=False)

    def load(self) -> Model:
        tree = self.repo.tree(self.repo.resolve(self.rev))
        return load_model(tree, render_secret=self.render_secret)

    def run_pass(self) -> PassOutcome:
        """Load, compute, publish, assess. Invalid definitions raise before any write."""
        model = self.load()
        fleet = self._read_fleet(model)
        ledger, desired = self._decide(model, fleet)
        # A plan's preflight checks stay published while it waits for the answers.
        verifier = self.policy.verifier() if self.policy.signing_key else None
        requests = read_requests(self.store, verifier, self.clock())
        merge_requests(desired.manifests, requests.live, fleet.servers)
        ledger.retired = {
            s: ledger.retired.get(s, model.commit)
            for s in fleet.servers
            if s not in model.inventory.servers
        }
        invalid = fleet.invalid()
        for s, problem in invalid.items():
            log.warning("invalid_document", server=s, problem=problem)
        held = self._hold_unknown(
            desired, fleet.pointers, fleet.stored, fleet.reports, set(fleet.bad_pointers)
        )
        published = self._write(fleet, ledger, desired, held)
        self._drop_expired(requests.expired)
        outcome = PassOutcome(
            commit=model.commit, desired=desired, published=published, ledger=ledger
        )
        outcome.invalid = invalid
        outcome.reports = fleet.reports
        outcome.notifications = model.notifications
        for server in published.pointers:
            manifest = desired.manifests.get(server, Manifest(deployments=()))
            progress = assess(
                server, manifest, fleet.reports.get(server), fleet.bad_reports.get(server)
            )
            # A server that left the inventory counts until its DELETE configs ran.
            if not (server in ledger.retired and progress.converged):
                outcome.servers[server] = progress
        log.info(
            "reconcile_pass",
            commit=model.commit[:12],
            published=len(published.changed),
            uploaded=len(published.uploaded),
            waiting=len(desired.waiting),
            converged=outcome.converged,
        )
        return outcome

    def publish_preflight(self, timeout: float, pointers: bool = True) -> PreflightRequest:
        """``plan --preflight``: the commit's changed entries to check beside what
        each server runs, nothing else changed (``converge.preflight``). Their
        blobs are stored, then the request document that keeps them published
        for ``timeout`` seconds and a minute more (``converge.preflight_requests``);
        then, with ``pointers``, the pointers (fenced by ``lease``, when held);
        without, a running controller publishes them on its next pass."""
        model = self.load()
        fleet = self._read_fleet(model)

        def previous(server: str) -> Manifest | None:
            return fleet.previous(server, self._manifests)

        head = compute_desired(model, fleet.reports, previous)
        trusted = {s: p for s, p in fleet.pointers.items() if s not in fleet.bad_pointers}
        now = self.clock()
        token = f"plan-{int(now * 1000)}-{secrets.token_hex(3)}"
        publication = preflight_publication(head, previous, trusted, token)
        request = PreflightRequest(
            token,
            model.commit,
            now + timeout + REQUEST_MARGIN,
            publication.checks,
            publication.bundles,
        )
        # Blobs before the request that names them: a pass may publish it at once.
        missing = sorted(self.store.find_missing(publication.blobs))
        self.store.pool.map(self.store.put_blob, [publication.blobs[d] for d in missing])
        write_request(self.store, request, self.policy.signing_key)
        if not pointers:
            return request
        fence: dict[str, Any] = {}
        if self.lease is not None:
            self.lease.hold()
            listed = {s: fleet.versions.get(pointer_key(s)) for s in fleet.servers}
            fence = {"fence": self.lease.hold}
            fence["versions"] = listed if self.lease.fences_writes else None
        for group in publication.groups.values():
            current = {s: trusted.get(s) for s in group.manifests}
            publish(self.store, group, current, self.clock, self.policy, fleet.seen, **fence)
        return request

    def _read_fleet(self, model: Model) -> _Fleet:
        """List ``agents/``, then read what changed: pointers, reports, manifests."""
        versions = self.store.list_versions(AGENTS)
        known = {k[len(AGENTS) :].split("/", 1)[0] for k in versions}
        servers = sorted({s for s in known if is_server_name(s)} | model.servers_in_use())
        for cache in (self._pointers, self._reports):
            for gone in set(cache) - set(servers):
                del cache[gone]
        fleet = _Fleet(servers=servers, versions=versions)
        self._read_pointers(fleet)
        fleet.heat_servers = [s for s in heat_agent.enrolled(self.store) if s in servers]
        # Heat's agent reads no pointer: its report only names the generation as stored.
        rewritten = heat_agent.sync_reports(
            self.store, fleet.heat_servers, fleet.stored, self.clock(), fence=self._hold
        )
        self._read_reports(fleet, rewritten)
        # A new generation passes every one seen: the stored pointer's, trusted
        # or not, and the one the agent says it accepted.
        fleet.seen = {
            s: max(
                _generation(fleet.stored[s]),
                _generation(fleet.reports.get(s)),
                self._misplaced.get(s, 0),
            )
            for s in servers
        }
        self._read_manifests(fleet)
        return fleet

    def _read_pointers(self, fleet: _Fleet) -> None:
        """Every server's stored pointer side by side, and the ones the controller trusts."""
        self._misplaced = {}
        # Reads side by side on the store's pool; each call touches only its own
        # server's entries in the caches (and in ``_misplaced``).
        read = self.store.pool.map(
            lambda s: self._pointer(s, fleet.versions.get(pointer_key(s))), fleet.servers
        )
        for s, (pointer, problem) in zip(fleet.servers, read, strict=True):
            fleet.stored[s] = pointer
            if problem is not None:
                fleet.bad_pointers[s] = problem
        if self._verified_under is not self.policy:
            # Verified under other keys says nothing under these.
            self._verified, self._verified_under = {}, self.policy
        # Sign only what you verified: refuses a downgrade before anything is written.
        fleet.pointers = trusted_pointers(fleet.stored, self.policy, self._known_good)
        self._verified = {s: p for s, p in fleet.pointers.items() if p is not None}

    def _known_good(self, server: str, pointer: Pointer) -> bool:
        """The very document verified (or written) by this controller before: the
        pointer cache hands back the same object only while the store's version
        of it is unchanged."""
        return self._verified.get(server) is pointer

    def _read_reports(self, fleet: _Fleet, rewritten: Collection[str]) -> None:
        """Every server's report side by side; ``rewritten`` ones are read as they are now."""
        # One written by this pass, after the listing, is read as it is now.
        # Reasons are masked as reports are read: the ledger, the outcome and the
        # notes carry them on, and an agent that does not mask wrote them.
        masker = Masker(self.store)
        read = self.store.pool.map(
            lambda s: self._report(s, fleet.versions.get(report_key(s)), masker, s in rewritten),
            fleet.servers,
        )
        for s, (report, problem) in zip(fleet.servers, read, strict=True):
            if problem is not None:
                fleet.bad_reports[s] = problem
            if report is not None:
                fleet.reports[s] = report

    def _read_manifests(self, fleet: _Fleet) -> None:
        """The manifests the pointers name, side by side, each at most once per process."""
        unread = sorted(
            {
                p.manifest
                for s, p in fleet.pointers.items()
                if p is not None and s not in fleet.bad_pointers
            }
            - set(self._manifests)
        )
        for digest, got in zip(
            unread, self.store.pool.map(self._read_manifest, unread), strict=True
        ):
            if isinstance(got, Manifest):
                self._manifests[digest] = got
            else:
                fleet.manifest_errors[digest] = got

    def _decide(self, model: Model, fleet: _Fleet) -> tuple[Ledger, DesiredState]:
        """Read the ledger and compute the desired state through the gate and rounds."""
        signing = self.policy.signing_key
        fenced = self.lease is not None and self.lease.fences_writes
        ledger = read_ledger(self.store, self.policy.verifier() if signing else None, fenced)
        gate = self._gate(model, fleet, ledger)
        rounds = Rounds(ledger, fleet.reports, model.commit, bound=self.converge_rounds)
        desired = compute_desired(
            model,
            fleet.reports,
            lambda server: fleet.previous(server, self._manifests),
            gate=gate,
            rounds=rounds,
        )
        gate.finish()
        gate.forget_others(set(model.order))
        rounds.forget_others()
        ledger.waiting = [w.to_dict() for w in desired.waiting]
        return ledger, desired

    def _gate(self, model: Model, fleet: _Fleet, ledger: Ledger) -> Gate:
        """The gate: which servers are behind, and which deployments follow which."""
        gate = Gate(
            ledger,
            fleet.reports,
            self.clock(),
            model.commit,
            unreachable_after=self.unreachable_after,
        )
        gate.heat_servers = set(fleet.heat_servers)
        gate.behind = {
            s
            for s, pointer in fleet.pointers.items()
            if pointer is not None and _generation(fleet.reports.get(s)) < pointer.generation
        }
        for dep in model.deployments():
            for upstream in sorted(dep.upstreams()):
                gate.dependents.setdefault(upstream, []).append(dep.qualified)
        return gate

    def _write(
        self, fleet: _Fleet, ledger: Ledger, desired: DesiredState, held: set[str]
    ) -> PublishResult:
        """Write the ledger, then the pointers (fenced by the lease), then Heat's metadata."""
        signing = self.policy.signing_key
        # The ledger before the pointers: a rollback target is on record before
        # the server's entry changes.
        ledger_fence, pointer_fence = self._fencing(fleet.servers, fleet.versions)
        write_ledger(self.store, ledger, signing, **ledger_fence)
        current = {s: p for s, p in fleet.pointers.items() if s not in held}
        published = publish(
            self.store, desired, current, self.clock, self.policy, fleet.seen, **pointer_fence
        )
        for server in published.changed:
            version = published.versions.get(server)
            if version is None:
                self._pointers.pop(server, None)
            else:
                self._pointers[server] = (version, published.pointers[server])
                # Signed here: the next pass need not verify it again.
                self._verified[server] = published.pointers[server]
        heat_agent.publish_metadata(
            self.store, desired, fleet.heat_servers, self.clock(), self.policy.ttl, self._hold
        )
        return published

    def _drop_expired(self, names: list[str]) -> None:
        """Delete the preflight requests this pass found expired (their plans were
        killed while they waited): one delete each, fenced as the pass's other
        writes, and none when there is none."""
        for name in names:
            self._hold()
            self.store.delete_controller_doc(name)
            log.info("preflight_request_expired", document=name)

    def _hold(self) -> None:
        """The fence before a write that is not the ledger's or a pointer's (Heat's
        agents' documents): with a lease, hold it now or write nothing."""
        if self.lease is not None:
            self.lease.hold()

    def rewrite_ledger(self, ledger: Ledger) -> bool:
        """Write ``ledger`` again after the pass, fenced as the pass's write was
        (what notifications were sent is recorded this way); whether it changed."""
        signing = self.policy.signing_key
        ledger_fence, _ = self._fencing([], {})
        return write_ledger(self.store, ledger, signing, **ledger_fence)

    def _fencing(
        self, servers: list[str], listed: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """With a lease: the arguments that fence the ledger write (held right
        before it, if it is written; epoch recorded, conditional on the version
        read) and the pointer batch (held right before it, each pointer
        conditional on the version of the object stored, valid or not: the one
        read, else the one listed)."""
        lease = self.lease
        if lease is None:
            return {}, {}
        if lease.epoch is None:
            lease.hold()  # never taken: raises LeaseLost, and nothing is written
        conditional = lease.fences_writes
        versions = {
            s: self._pointers[s][0] if s in self._pointers else listed.get(pointer_key(s))
            for s in servers
        }
        return (
            {"epoch": lease.epoch, "conditional": conditional, "fence": lease.hold},
            {"fence": lease.hold, "versions": versions if conditional else None},
        )

    @staticmethod
    def _hold_unknown(
        desired: DesiredState,
        pointers: dict[str, Pointer | None],
        stored: dict[str, Pointer | None],
        reports: dict[str, Report],
        unreadable: set[str],
    ) -> set[str]:
        """Publish nothing to a server whose last pointer is unknown while a
        deployment on it waits.

        Its pointer (or the manifest it names) was refused, unreadable or
        deleted after its agent accepted one, so what it was given cannot be
        known. A waiting deployment keeps
        what the server was given; with nothing known, the manifest would leave
        it out and the agent would DELETE it. The agent keeps running its last
        good configs meanwhile; once nothing waits, git says everything.
        Returns the servers held: they get no pointer on this pass.
        """
        unknown = {
            s
            for s, pointer in pointers.items()
            if s in unreadable
            or (pointer is None and (stored.get(s) is not None or _generation(reports.get(s)) > 0))
        }
        held = {w.server for w in desired.waiting if w.server in unknown}
        for server in sorted(held):
            desired.manifests.pop(server, None)
            log.warning(
                "pointer_held",
                server=server,
                reason="its last pointer cannot be verified and a deployment on it waits",
            )
        return held

    def _read_manifest(self, digest: str) -> Manifest | str:
        """The manifest ``digest``, or why it cannot be read."""
        try:
            return Manifest.from_dict(self.store.get_json_blob(digest, "manifest"))
        except (InvalidDocument, DigestMismatch, NotFound) as exc:
            return str(exc)

    def _pointer(self, server: str, version: str | None) -> tuple[Pointer | None, str | None]:
        """The server's pointer (read only if its listed version is not the cached
        one), or None and why it cannot be used: one bad pointer marks one server."""
        if version is None:
            self._pointers.pop(server, None)
            return None, None
        cached = self._pointers.get(server)
        if cached is not None and cached[0] == version:
            return cached[1], None
        try:
            got = self._read_pointer_twice(server)
        except InvalidDocument as exc:
            self._pointers.pop(server, None)
            return None, str(exc)
        if got is None:
            self._pointers.pop(server, None)
            return None, None
        pointer, read_version = got
        if pointer.server != server:
            self._pointers.pop(server, None)
            # Not this server's, but parsed: its generation is a floor all the same.
            self._misplaced[server] = pointer.generation
            return None, f"invalid pointer: names server {pointer.server!r}"
        self._pointers[server] = (read_version, pointer)
        return pointer, None

    def _read_pointer_twice(self, server: str) -> tuple[Pointer, str] | None:
        """A pointer that does not parse is read once more before it counts as bad.

        A torn read (a connection dropped mid-body) reads whole the second
        time; taken as bad, its generation would be unknown and the next one
        could fall below it, which the server's agent refuses. A pointer that
        fails twice is bad: the pass replaces it, numbered above its report.
        """
        try:
            return self.store.read_pointer_versioned(server)
        except InvalidDocument:
            return self.store.read_pointer_versioned(server)

    def _report(
        self, server: str, version: str | None, masker: Masker, fresh: bool = False
    ) -> tuple[Report | None, str | None]:
        """The server's report (read only if its listed version is not the cached
        one; always with ``fresh``), or None and why it cannot be used."""
        if version is None and not fresh:
            self._reports.pop(server, None)
            return None, None
        cached = self._reports.get(server)
        if cached is not None and cached[0] == version and not fresh:
            return cached[1], None
        self._reports.pop(server, None)
        try:
            got = self.store.read_report_versioned(server)
        except InvalidDocument as exc:
            return None, str(exc)
        if got is None:
            return None, None
        report, read_version = got
        if report.server != server:
            # An agent writes only its own report: one naming another server
            # is a copy, and would answer for a server that said nothing.
            return None, f"invalid report: names server {report.server!r}"
        report = masked_reasons(report, masker)
        if not fresh:
            self._reports[server] = (read_version, report)
        return report, None


# Exit codes of `setpoint reconcile --wait`, documented in --help.
CONVERGED, FAILED, TIMED_OUT = 0, 1, 2


def wait_for_convergence(
    reconciler: Reconciler,
    timeout: float,
    interval: float,
    on_pass: Callable[[PassOutcome], None],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, PassOutcome]:
    """Repeat passes until converged (0), failed (1) or ``timeout`` seconds pass (2)."""
    deadline = reconciler.clock() + timeout
    # server -> the newest generation this run published to it: only a report
    # answering it counts (one from before tells of a pointer since replaced).
    published: dict[str, int] = {}
    while True:
        outcome = reconciler.run_pass()
        for server in outcome.published.changed:
            published[server] = outcome.published.pointers[server].generation
        on_pass(outcome)
        failed, converged = outcome.judged(published)
        if failed:
            return FAILED, outcome
        if converged:
            return CONVERGED, outcome
        if reconciler.clock() >= deadline:
            return TIMED_OUT, outcome
        sleep(interval)
