"""Servers that run Heat's own agent (os-collect-config + heat-config hooks).

Such a server is enrolled with ``setpoint enroll SERVER --agent heat``: its
name goes into ``controller/heat-agents``, and it gets an os-collect-config
configuration whose ``[request] metadata_url`` is a TempURL (Swift) or a
presigned URL (S3) of ``agents/<server>/heat-metadata``.

Each pass, for every such server, the controller plays the part setpoint-agent
plays elsewhere, from its own side of the store:

- ``sync_reports`` (before the reports are read): reads the signals of runs
  still in flight (``agents/<server>/signals/<deployment>/<digest hex>/<run>``,
  heat-config-notify's PUT of the hook's JSON), and writes the server's
  ``agents/<server>/report`` from them, so every reader of reports (assess,
  data flow, rollouts, status) sees that server like any other.
- ``publish_metadata`` (after the pointers): turns the server's manifest into
  the document Heat's agents read, ``{"deployments": [...]}``, one derived
  config in Heat's shape per run, and writes it when it changed.

heat-config runs a deployment whose ``id`` it has not run yet, with the
``deploy_action`` given in its inputs. So the controller decides the action
(CREATE until a run of that deployment succeeded on that server, then UPDATE;
DELETE once it leaves the manifest) and gives every new run a new ``id`` and a
new signal URL: the run number grows on every run of the server, so a revert
to a digest that ran before is a new run, and a stale signal is never read as
the answer to a new one. The bookkeeping lives in ``agents/<server>/heat-runs``
(controller only; no URL reaches it).

Both steps read every server side by side on the store's pool, decide what to
write, and only then write, on the pool too, after ``fence`` (a controller
holding the lease passes ``Lease.hold``, as for the pointer wave): a deposed
leader writes no Heat-agent document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import structlog

from setpoint.controller.converge.capabilities import DEFAULT_TTL, S3_MAX_TTL, CapabilityError
from setpoint.controller.errors import SetpointError
from setpoint.controller.rollout.desired import DesiredState
from setpoint.store.base import Store, agent_key
from setpoint.store.digest import canonical_json, digest_bytes, hex_of
from setpoint.store.documents import (
    DELIVERED_GROUPS,
    DEPLOY_OUTPUTS,
    DeploymentReport,
    Manifest,
    ManifestEntry,
    Pointer,
    Report,
    config_for_action,
    is_server_name,
    loads_object,
    path_segment,
)
from setpoint.store.errors import InvalidDocument, PermanentError
from setpoint.store.timestamps import format_timestamp as _iso

log = structlog.get_logger("setpoint.heat_agent")

ENROLLED = "heat-agents"  # controller/heat-agents: {"servers": [...]}
METADATA = "heat-metadata"  # agents/<server>/heat-metadata: what os-collect-config polls
RUNS = "heat-runs"  # agents/<server>/heat-runs: the controller's bookkeeping
SIGNALS = "signals/"
AGENT_VERSION = "heat-config (via setpoint controller)"
TAIL = 4000
# deploy_stdout and deploy_stderr as outputs: their last characters, as
# setpoint-agent keeps (they are logs, not values).
DEPLOY_OUTPUT_CHARS = 64 * 1024


class HeatAgentError(SetpointError):
    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"heat agent of {server!r}: {reason}")
        self.server = server
        self.reason = reason


class _SwiftLike(Protocol):
    def temp_url(self, method: str, key: str, expires_at: int, *, prefix: bool = False) -> str: ...


class _S3Like(Protocol):
    def presign(self, method: Any, key: str, expires_in: int) -> str: ...


def signed_url(store: Store, method: str, key: str, now: float, ttl: int) -> tuple[str, int]:
    """(URL, expiry) for ``method`` on ``key``: a TempURL or a presigned URL."""
    kind = store.capability_kind
    if kind == "swift":
        expires = int(now) + ttl
        try:
            return cast(_SwiftLike, store).temp_url(method, key, expires), expires
        except PermanentError as exc:
            raise CapabilityError(
                store.url, f"{exc}; 'setpoint rotate-keys --store {store.url}' creates one"
            ) from exc
    if kind == "s3":
        ttl = min(ttl, S3_MAX_TTL)
        return cast(_S3Like, store).presign(method, key, ttl), int(now) + ttl
    raise CapabilityError(
        store.url, "Heat's agents need a Swift or S3 store (they reach it by URL only)"
    )


# -- enrolment ------------------------------------------------------------------


def enrolled(store: Store) -> list[str]:
    doc = store.read_controller_doc(ENROLLED) or {}
    servers = doc.get("servers", [])
    return sorted(s for s in servers if is_server_name(s)) if isinstance(servers, list) else []


def enroll(store: Store, server: str) -> None:
    if not is_server_name(server):
        raise HeatAgentError(server, "not a valid server name")
    servers = enrolled(store)
    if server not in servers:
        store.write_controller_doc(ENROLLED, {"servers": sorted([*servers, server])})


@dataclass(frozen=True)
class CollectConfig:
    server: str
    metadata_url: str
    expires_at: int

    def os_collect_config_conf(self, polling_interval: int = 30) -> str:
        return (
            "[DEFAULT]\n"
            "command = os-refresh-config\n"
            "collectors = request\n"
            f"polling_interval = {polling_interval}\n"
            "\n"
            "[request]\n"
            f"metadata_url = {self.metadata_url}\n"
        )

    def text(self) -> str:
        expires = datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"""\
# os-collect-config for {self.server} (setpoint, --agent heat)
# metadata_url is valid until {expires}; enroll again before then.
# Command chain: os-collect-config -> os-refresh-config ->
#   configure.d/20-os-apply-config (writes /var/run/heat-config/heat-config)
#   configure.d/55-heat-config (runs each new deployment through
#   /var/lib/heat-config/hooks/<group>, then heat-config-notify PUTs the
#   result to the deployment's deploy_signal_id)
# Elements: heat-agents' heat-config and heat-config-script (hook-script.py
# installed as /var/lib/heat-config/hooks/script).
# --- /etc/os-collect-config.conf ---
{self.os_collect_config_conf()}"""


def collect_config(store: Store, server: str, now: float, ttl: int = DEFAULT_TTL) -> CollectConfig:
    """Register ``server`` as a Heat-agent server and issue its metadata URL."""
    url, expires = signed_url(store, "GET", agent_key(server, METADATA), now, ttl)
    enroll(store, server)
    return CollectConfig(server, url, expires)


# -- bookkeeping ------------------------------------------------------------------


def _read_runs(store: Store, server: str) -> dict[str, Any]:
    data = store.read_agent_object(server, RUNS)
    if data is None:
        return {"serial": 0, "runs": {}, "metadata": None}
    try:
        doc = loads_object(data, "heat runs")
    except InvalidDocument:
        log.warning("heat_runs_unreadable", server=server)
        return {"serial": 0, "runs": {}, "metadata": None}
    doc.setdefault("serial", 0)
    doc.setdefault("runs", {})
    doc.setdefault("metadata", None)
    return doc


def _parse_signal(data: bytes) -> dict[str, Any]:
    try:
        return loads_object(data, "heat signal")
    except InvalidDocument as exc:
        return {"deploy_status_code": -1, "deploy_stderr": f"unreadable signal: {exc}"}


def _settle(run: dict[str, Any], signal: dict[str, Any], now: float) -> None:
    """Record heat-config's result JSON in ``run``: its outputs, and the
    ``deploy_*`` ones the derived config declares (``get_attr`` reads them)."""
    code = signal.get("deploy_status_code", 0)
    stdout = str(signal.get("deploy_stdout", ""))
    stderr = str(signal.get("deploy_stderr", ""))
    outputs = {k: v for k, v in signal.items() if not k.startswith("deploy_")}
    ok = isinstance(code, int) and not isinstance(code, bool) and code == 0
    error = signal.get("deploy_error")
    streams = {
        "deploy_stdout": stdout[-DEPLOY_OUTPUT_CHARS:],
        "deploy_stderr": stderr[-DEPLOY_OUTPUT_CHARS:],
        "deploy_status_code": code,
    }
    outputs.update((k, v) for k, v in streams.items() if k in run.get("deploy_outputs", ()))
    run.update(
        status="COMPLETE" if ok else "FAILED",
        outputs=outputs if ok else {},
        stdout_tail=stdout[-TAIL:],
        stderr_tail=stderr[-TAIL:],
        exit_code=code if isinstance(code, int) else None,
        finished_at=_iso(now),
        reason=None if ok else (error or f"heat-config hook exited {code}: {stderr[-300:]}"),
    )
    if ok:
        run["created"] = True


def _report(server: str, pointer: Pointer | None, book: dict[str, Any], now: float) -> Report:
    deployments = {}
    for name, run in book["runs"].items():
        if run.get("action") == "DELETE" and run.get("status") == "COMPLETE":
            continue  # deleted: forgotten
        deployments[name] = DeploymentReport(
            name=name,
            config=run["config"],
            action=run["action"],
            status=run["status"],
            outputs=run.get("outputs", {}),
            stdout_tail=run.get("stdout_tail", ""),
            stderr_tail=run.get("stderr_tail", ""),
            exit_code=run.get("exit_code"),
            attempts=1,
            started_at=run.get("started_at"),
            finished_at=run.get("finished_at"),
            reason=run.get("reason"),
            final=run["status"] != "IN_PROGRESS",
        )
    return Report(
        server=server,
        generation=pointer.generation if pointer else 0,
        manifest=pointer.manifest if pointer else None,
        updated_at=_iso(now),
        deployments=deployments,
        agent_version=AGENT_VERSION,
    )


@dataclass
class _Writes:
    """What one pass writes for one Heat-agent server, in this order: the
    documents first, then the record of them (``heat-runs``), so a crash in
    between makes the next pass compute (and write) the same documents again."""

    server: str
    report: Report | None = None
    metadata: bytes | None = None
    book: bytes | None = None

    def __bool__(self) -> bool:
        return self.report is not None or self.metadata is not None or self.book is not None

    def write(self, store: Store) -> None:
        if self.report is not None:
            store.write_report(self.report)
        if self.metadata is not None:
            store.write_agent_object(self.server, METADATA, self.metadata)
        if self.book is not None:
            store.write_agent_object(self.server, RUNS, self.book)


def _write_all(store: Store, writes: list[_Writes], fence: Callable[[], object] | None) -> None:
    """Every server's writes side by side, once ``fence`` (the lease's hold) let them."""
    todo = [w for w in writes if w]
    if todo and fence is not None:
        fence()
    store.pool.map(lambda w: w.write(store), todo)


def sync_reports(
    store: Store,
    servers: Iterable[str],
    pointers: dict[str, Pointer | None],
    now: float,
    fence: Callable[[], object] | None = None,
) -> list[str]:
    """Signals of in-flight runs → each Heat-agent server's report. Returns the
    servers whose report was rewritten."""
    writes = store.pool.map(lambda s: _synced(store, s, pointers.get(s), now), list(servers))
    _write_all(store, writes, fence)
    return [w.server for w in writes if w.report is not None]


def _synced(store: Store, server: str, pointer: Pointer | None, now: float) -> _Writes:
    """One server's report from its signals, and its book, when they changed."""
    book = _read_runs(store, server)
    before = canonical_json(book)
    for run in book["runs"].values():
        if run.get("status") != "IN_PROGRESS" or not run.get("signal"):
            continue
        data = store.read_agent_object(server, run["signal"])
        if data is None:
            continue
        _settle(run, _parse_signal(data), now)
        log.info("heat_signal_read", server=server, run=run["id"], status=run["status"])
    for name in [n for n, r in book["runs"].items() if _forgotten(r)]:
        del book["runs"][name]
    writes = _Writes(server)
    report = _report(server, pointer, book, now)
    seen = digest_bytes(canonical_json({k: v.to_dict() for k, v in report.deployments.items()}))
    if seen != book.get("report"):
        writes.report = report
        book["report"] = seen
    after = canonical_json(book)
    writes.book = after if after != before else None
    return writes


def _forgotten(run: dict[str, Any]) -> bool:
    return bool(run.get("action") == "DELETE" and run.get("status") == "COMPLETE")


# -- the metadata document ---------------------------------------------------------


def _derived(store: Store, desired: DesiredState, digest: str) -> dict[str, Any]:
    rendered = desired.configs.get(digest)
    return rendered.body if rendered else store.get_json_blob(digest, "config")


def _new_run(
    book: dict[str, Any], name: str, config: str, action: str, retry: int, now: float
) -> dict[str, Any]:
    book["serial"] += 1
    serial = book["serial"]
    hexd = hex_of(config)
    previous = book["runs"].get(name) or {}
    run = {
        "id": f"setpoint-{serial}-{hexd[:16]}",
        "config": config,
        "action": action,
        "retry": retry,
        "status": "IN_PROGRESS",
        "started_at": _iso(now),
        "created": bool(previous.get("created")),
        "actions": [],
        "signal": f"{SIGNALS}{name}/{hexd}/{serial}",
    }
    book["runs"][name] = run
    return run


def _skip(run: dict[str, Any], reason: str, now: float) -> None:
    run.update(status="COMPLETE", reason=reason, finished_at=_iso(now), signal=None)


def _as_env(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _heat_config(
    server: str,
    name: str,
    run: dict[str, Any],
    derived: dict[str, Any],
    tool: str,
    config: Any,
    signal_url: str | None,
) -> dict[str, Any]:
    """heat-config's document for one run; no ``signal_url``: NO_SIGNAL."""
    stack, deployment = name.split("/", 1)
    deploy = [
        ("deploy_server_id", server),
        ("deploy_action", run["action"]),
        ("deploy_stack_id", stack),
        ("deploy_resource_name", deployment.split("@", 1)[0]),
    ]
    if signal_url is None:
        deploy.append(("deploy_signal_transport", "NO_SIGNAL"))
    else:
        deploy += [
            ("deploy_signal_transport", "TEMP_URL_SIGNAL"),
            ("deploy_signal_id", signal_url),
            ("deploy_signal_verb", "PUT"),
        ]
    inputs = [dict(i) for i in derived.get("inputs") or []]
    if tool == "script":
        # heat-config's hook-script.py puts every value in the environment as
        # is: non-strings as setpoint-agent gives them (JSON).
        for i in inputs:
            i["value"] = _as_env(i.get("value"))
    inputs += [{"name": n, "type": "String", "value": v} for n, v in deploy]
    return {
        "id": run["id"],
        # os-collect-config writes an os-apply-config or Heat::Ungrouped
        # deployment to <cachedir>/<name>.json: one file name, no '/'.
        "name": path_segment(name),
        "group": tool,
        "config": config,
        "inputs": inputs,
        "outputs": [dict(o) for o in derived.get("outputs") or []],
        "options": dict(derived.get("options") or {}),
        "creation_time": run["started_at"],
    }


def _plan_runs(
    store: Store,
    desired: DesiredState,
    manifest: Manifest,
    book: dict[str, Any],
    now: float,
) -> None:
    """Start a run for every entry whose digest (or retry count) has none yet,
    and a DELETE run for every deployment that left the manifest."""
    wanted = {e.name: e for e in manifest.deployments}
    for entry in manifest.deployments:
        run = book["runs"].get(entry.name)
        same = run and run["config"] == entry.config and run.get("retry", 0) == entry.retry
        if same and run and run["action"] != "DELETE":
            continue
        action = "UPDATE" if run and run.get("created") else "CREATE"
        _start(store, desired, entry, action, book, now)
    for name, run in list(book["runs"].items()):
        if name in wanted or run["action"] == "DELETE":
            continue
        if not run.get("created"):
            del book["runs"][name]
            continue
        entry = ManifestEntry(name, run["config"], tuple(run.get("actions") or ()), 1.0)
        _start(store, desired, entry, "DELETE", book, now)


def _start(
    store: Store,
    desired: DesiredState,
    entry: ManifestEntry,
    action: str,
    book: dict[str, Any],
    now: float,
) -> None:
    run = _new_run(book, entry.name, entry.config, action, entry.retry, now)
    run["actions"] = list(entry.actions)
    if action not in entry.actions:
        _skip(run, f"{action} is not among the deployment's actions: nothing run", now)
        if action != "DELETE":
            run["created"] = True
        return
    derived = _derived(store, desired, entry.config)
    declared = {o.get("name") for o in derived.get("outputs") or []}
    run["deploy_outputs"] = [n for n in DEPLOY_OUTPUTS if n in declared]
    if derived.get("files"):
        run.update(
            status="FAILED",
            reason="attached files (get_file directories) need setpoint-agent; "
            "Heat's agents cannot fetch them",
            finished_at=_iso(now),
            signal=None,
        )
        return
    if entry.state != "active" or entry.run is not None:
        run.update(
            status="FAILED",
            reason="suspend/resume and custom actions need setpoint-agent",
            finished_at=_iso(now),
            signal=None,
        )
        return
    chosen = config_for_action(derived, action)
    if chosen is None:
        _skip(run, f"the component has no config for {action}: nothing run", now)
    elif entry.no_signal and chosen[0] in DELIVERED_GROUPS:
        # Heat completes it once delivered: os-collect-config hands it to
        # os-apply-config, and no hook signals.
        _skip(run, f"NO_SIGNAL {chosen[0]} config: complete once delivered, as in Heat", now)
        if action != "DELETE":
            run.update(delivered=True, created=True)


def publish_metadata(
    store: Store,
    desired: DesiredState,
    servers: Iterable[str],
    now: float,
    ttl: int = DEFAULT_TTL,
    fence: Callable[[], object] | None = None,
) -> list[str]:
    """Write each Heat-agent server's metadata document if it changed; the
    servers whose document was written."""
    writes = store.pool.map(lambda s: _metadata(store, desired, s, now, ttl), list(servers))
    _write_all(store, writes, fence)
    for w in writes:
        if w.metadata is not None:
            log.info("heat_metadata_published", server=w.server)
    return [w.server for w in writes if w.metadata is not None]


def _metadata(store: Store, desired: DesiredState, server: str, now: float, ttl: int) -> _Writes:
    """One server's metadata document and book, when they changed."""
    manifest = desired.manifests.get(server, Manifest(deployments=()))
    book = _read_runs(store, server)
    before = canonical_json(book)
    _plan_runs(store, desired, manifest, book, now)
    renew = int(book.get("expires_at") or 0) - now < min(ttl, S3_MAX_TTL) / 2
    expires = int(book.get("expires_at") or 0)
    deployments = []
    for name, run in book["runs"].items():
        if not run.get("signal") and not run.get("delivered"):
            continue  # decided by the controller: nothing for the server to run
        derived = _derived(store, desired, run["config"])
        chosen = config_for_action(derived, run["action"])
        if chosen is None:
            continue
        if run.get("signal") and (renew or "signal_url" not in run):
            run["signal_url"], expires = signed_url(
                store, "PUT", agent_key(server, run["signal"]), now, ttl
            )
        url = run.get("signal_url") if run.get("signal") else None
        deployments.append(_heat_config(server, name, run, derived, *chosen, url))
    if renew:
        book["expires_at"] = expires
    order = {e.name: i for i, e in enumerate(manifest.deployments)}
    deployments.sort(key=lambda d: (order.get(d["name"], len(order)), d["name"]))
    metadata = canonical_json({"deployments": deployments})
    digest = digest_bytes(metadata)
    writes = _Writes(server)
    if digest != book.get("metadata"):
        writes.metadata = metadata
        book["metadata"] = digest
    after = canonical_json(book)
    writes.book = after if after != before else None
    return writes
