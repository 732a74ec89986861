"""The documents that cross the store between controller and agents.

- ``Pointer`` (``agents/<server>/pointer``, written by the controller only):
  which manifest a server should run, at which generation.
- ``Manifest`` (a blob): the server's deployments in run order, each naming its
  derived config by digest, plus where each directory bundle's zip is stored.
- ``Report`` (``agents/<server>/report``, written by that server's agent only):
  what the agent ran, per deployment, and which generation it answers.
- The derived config itself (a blob) is a plain dict; see ``config_for_action``.

Parsing validates shape and types and raises ``InvalidDocument``; a document
from the store is never trusted to be well formed just because it parsed as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from setpoint.store.digest import canonical_json, is_digest
from setpoint.store.errors import InvalidDocument

LIFECYCLE_ACTIONS = ("CREATE", "UPDATE", "DELETE", "SUSPEND", "RESUME")
STATUSES = ("IN_PROGRESS", "COMPLETE", "FAILED")
ENTRY_STATES = ("active", "suspended")
# What a preflight (check mode of a config not yet applied) found, and what a
# drift check (check mode of the applied config) found.
PREFLIGHT_STATUSES = ("PASSED", "FAILED")
DRIFT_STATUSES = ("clean", "drifted", "unknown")
COMPONENT_GROUP = "component"
# Groups whose configs Heat's agents hand to os-apply-config instead of a hook.
DELIVERED_GROUPS = ("Heat::Ungrouped", "os-apply-config")
# What every run reports, as outputs of the configs that declare them (Heat's).
DEPLOY_OUTPUTS = ("deploy_stdout", "deploy_stderr", "deploy_status_code")

_SERVER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def is_server_name(name: object) -> bool:
    """Server names become path segments in the store: keep them to a safe alphabet."""
    return isinstance(name, str) and _SERVER_RE.match(name) is not None and ".." not in name


def path_segment(name: str) -> str:
    """``name`` as one safe file or path segment: percent-quoted (``/`` too),
    never empty, ``.`` or ``..``. Agents name files after deployments with it."""
    quoted = quote(name, safe="-_.~@+,=")
    if quoted in ("", ".", ".."):
        quoted = "%" + quoted.replace(".", "%2E")
    return quoted


def _need(doc: Any, what: str, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(doc, dict):
        raise InvalidDocument(what, "not a JSON object")
    if key not in doc:
        raise InvalidDocument(what, f"missing field {key!r}")
    value = doc[key]
    # bool is an int in Python; a generation of `true` is still wrong.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise InvalidDocument(what, f"field {key!r} has the wrong type")
    if not isinstance(value, kind):
        raise InvalidDocument(what, f"field {key!r} has the wrong type")
    return value


def _need_digest(doc: Any, what: str, key: str) -> str:
    value: str = _need(doc, what, key, str)
    if not is_digest(value):
        raise InvalidDocument(what, f"field {key!r} is not a blake3 digest")
    return value


def loads_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidDocument(what, f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidDocument(what, "not a JSON object")
    return value


@dataclass(frozen=True)
class Pointer:
    """Which manifest a server runs, at which generation; signed by the controller.

    ``capabilities`` renews the agent's URLs (Swift TempURLs, S3 presigned
    URLs) before they expire; ``trust`` is the set of signing keys the agent
    trusts from now on (how a new key is announced and an old one retired).
    ``moved_to`` (``setpoint move``) tells the agent its fleet now lives in
    another store: ``{url?, capabilities?}``, a path or ``file://`` URL, or the
    capability URLs (Swift, S3) of its pointer, report and blobs there; the
    agent switches once the pointer there verifies, and never comes back. It
    is left out when absent, so pointers written before it keep their bytes.
    The signature covers every other field.
    """

    server: str
    generation: int
    manifest: str
    commit: str
    published_at: str
    capabilities: dict[str, Any] | None = None
    trust: dict[str, str] | None = None
    key: str | None = None
    signature: str | None = None
    moved_to: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": "Pointer",
            "server": self.server,
            "generation": self.generation,
            "manifest": self.manifest,
            "commit": self.commit,
            "published_at": self.published_at,
        }
        for name in ("capabilities", "trust", "key", "signature", "moved_to"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        return doc

    def payload(self) -> bytes:
        """The bytes the signature covers: the canonical pointer without it."""
        doc = self.to_dict()
        doc.pop("signature", None)
        return canonical_json(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> Pointer:
        what = "pointer"
        server = _need(doc, what, "server", str)
        generation = _need(doc, what, "generation", int)
        if generation < 1:
            raise InvalidDocument(what, "generation must be at least 1")
        optional: dict[str, Any] = {}
        for name, kind in (
            ("capabilities", dict),
            ("trust", dict),
            ("key", str),
            ("signature", str),
            ("moved_to", dict),
        ):
            if doc.get(name) is not None:
                optional[name] = _need(doc, what, name, kind)
        moved_to = optional.get("moved_to")
        if moved_to is not None:
            _check_moved_to(moved_to)
        trust = optional.get("trust")
        if trust is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in trust.items()
        ):
            raise InvalidDocument(what, "trust must map key names to public keys")
        return cls(
            server=server,
            generation=generation,
            manifest=_need_digest(doc, what, "manifest"),
            commit=_need(doc, what, "commit", str),
            published_at=_need(doc, what, "published_at", str),
            **optional,
        )


def _check_moved_to(doc: dict[str, Any]) -> None:
    what = "pointer moved_to"
    if set(doc) - {"url", "capabilities"}:
        raise InvalidDocument(what, "only 'url' and 'capabilities' are allowed")
    if doc.get("url") is None and doc.get("capabilities") is None:
        raise InvalidDocument(what, "needs a 'url' or 'capabilities'")
    if doc.get("url") is not None and (not isinstance(doc["url"], str) or not doc["url"]):
        raise InvalidDocument(what, "url must be a non-empty string")
    if doc.get("capabilities") is not None and not isinstance(doc["capabilities"], dict):
        raise InvalidDocument(what, "capabilities must be a JSON object")


@dataclass(frozen=True)
class ManifestEntry:
    """One deployment on one server.

    ``name`` is ``<stack>/<deployment>``, or ``<stack>/<deployment>@<instance>``
    for a deployment whose ``replace_on_change`` inputs name the instance (a
    new instance is created, then the old one deleted). ``actions`` are the
    lifecycle actions this deployment runs (Heat's deployment ``actions``);
    ``timeout`` bounds one hook run in seconds. ``state`` is ``active`` or
    ``suspended`` (the agent runs SUSPEND or RESUME when it changes); ``run``
    asks for a custom action once per token: ``{action, token}``; ``retry``
    counts ``setpoint retry`` of this digest here (a new count makes the agent
    try a digest that failed for good once more); ``no_signal`` is Heat's
    ``signal_transport: NO_SIGNAL``. None of these is part of the config's
    digest: they say when and how to run it, not what runs. ``state``, ``run``,
    ``retry`` and ``no_signal`` are left out of the document at their defaults,
    so manifests written before they existed keep their digests.
    """

    name: str
    config: str
    actions: tuple[str, ...]
    timeout: float
    state: str = "active"
    run: tuple[str, str] | None = None  # (action, token)
    retry: int = 0
    # A config of a DELIVERED_GROUPS group completes once delivered when no hook runs it.
    no_signal: bool = False

    @property
    def stack(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def deployment(self) -> str:
        return self.name.split("/", 1)[1].split("@", 1)[0]

    @property
    def qualified(self) -> str:
        """``<stack>/<deployment>`` without the instance."""
        return self.name.split("@", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "config": self.config,
            "actions": list(self.actions),
            "timeout": self.timeout,
        }
        if self.state != "active":
            doc["state"] = self.state
        if self.run is not None:
            doc["run"] = {"action": self.run[0], "token": self.run[1]}
        if self.retry:
            doc["retry"] = self.retry
        if self.no_signal:
            doc["no_signal"] = True
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> ManifestEntry:
        what = "manifest entry"
        name = _need(doc, what, "name", str)
        # A deployment of a nested Heat template is named by its path: stack/res/inner.
        if "/" not in name or "" in name.split("@", 1)[0].split("/"):
            raise InvalidDocument(what, f"name {name!r} is not <stack>/<deployment>")
        actions = _need(doc, what, "actions", list)
        if not all(isinstance(a, str) and a for a in actions):
            raise InvalidDocument(what, "actions must be non-empty strings")
        timeout = _need(doc, what, "timeout", (int, float))
        if timeout <= 0:
            raise InvalidDocument(what, "timeout must be positive")
        state = doc.get("state", "active")
        if state not in ENTRY_STATES:
            raise InvalidDocument(what, f"unknown state {state!r}")
        run = None
        if doc.get("run") is not None:
            action = _need(doc["run"], what, "action", str)
            token = _need(doc["run"], what, "token", str)
            if not action:
                raise InvalidDocument(what, "run.action must not be empty")
            run = (action, token)
        retry = doc.get("retry", 0)
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise InvalidDocument(what, "retry must be a whole number >= 0")
        no_signal = doc.get("no_signal", False)
        if not isinstance(no_signal, bool):
            raise InvalidDocument(what, "no_signal must be true or false")
        return cls(
            name=name,
            config=_need_digest(doc, what, "config"),
            actions=tuple(actions),
            timeout=float(timeout),
            state=state,
            run=run,
            retry=retry,
            no_signal=no_signal,
        )


@dataclass(frozen=True)
class Manifest:
    """A server's desired deployments in run order. Stored as a blob.

    It names no server, so servers with the same desired state share one blob.
    ``bundles`` maps a directory's tree digest (its identity inside a derived
    config) to the digest of the zip blob that carries it. ``preflight`` lists
    entries the agent only checks (the tool's check mode), never applies: the
    configs a rollout waits to see pass everywhere before its first batch. It
    is a key of the manifest, not of the pointer, because an agent that does
    not know it ignores a manifest's unknown keys, while a pointer's unknown
    key would fail its signature check; it is left out when empty, so other
    manifests keep their digests.
    """

    deployments: tuple[ManifestEntry, ...]
    bundles: dict[str, str] = field(default_factory=dict)
    preflight: tuple[ManifestEntry, ...] = ()

    @property
    def fetched(self) -> tuple[ManifestEntry, ...]:
        """Every entry whose config an agent fetches: the deployments, then the
        preflight entries."""
        return (*self.deployments, *self.preflight)

    def entry(self, name: str) -> ManifestEntry | None:
        for e in self.deployments:
            if e.name == name:
                return e
        return None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": "Manifest",
            "deployments": [e.to_dict() for e in self.deployments],
            "bundles": dict(sorted(self.bundles.items())),
        }
        if self.preflight:
            doc["preflight"] = [e.to_dict() for e in self.preflight]
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> Manifest:
        what = "manifest"
        entries = tuple(ManifestEntry.from_dict(e) for e in _need(doc, what, "deployments", list))
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise InvalidDocument(what, "a deployment is listed twice")
        bundles = _need(doc, what, "bundles", dict)
        if not all(is_digest(k) and is_digest(v) for k, v in bundles.items()):
            raise InvalidDocument(what, "bundles must map digests to digests")
        preflight: tuple[ManifestEntry, ...] = ()
        if doc.get("preflight") is not None:
            listed = _need(doc, what, "preflight", list)
            preflight = tuple(ManifestEntry.from_dict(e) for e in listed)
            checked = [e.name for e in preflight]
            if len(set(checked)) != len(checked):
                raise InvalidDocument(what, "a deployment is listed twice in 'preflight'")
        return cls(deployments=entries, bundles=dict(bundles), preflight=preflight)


@dataclass(frozen=True)
class DeploymentReport:
    """What an agent knows of one deployment: the latest run of ``config``.

    ``final`` is true when the agent will not try this digest again by itself
    (it succeeded, or it failed and used up its attempts). ``state`` is the
    state last applied (``suspended`` after a SUSPEND succeeded) and ``token``
    the ``run`` token of the last custom action run; both default so that
    reports of older agents still parse.
    """

    name: str
    config: str
    action: str
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    stdout_tail: str = ""
    stderr_tail: str = ""
    exit_code: int | None = None
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    retry_at: str | None = None
    final: bool = False
    state: str = "active"
    token: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Any) -> DeploymentReport:
        what = "deployment report"
        status = _need(doc, what, "status", str)
        if status not in STATUSES:
            raise InvalidDocument(what, f"unknown status {status!r}")
        known = set(cls.__dataclass_fields__)
        return cls(
            name=_need(doc, what, "name", str),
            config=_need_digest(doc, what, "config"),
            action=_need(doc, what, "action", str),
            status=status,
            **{k: v for k, v in doc.items() if k in known and k not in _REQUIRED_REPORT_FIELDS},
        )


_REQUIRED_REPORT_FIELDS = {"name", "config", "action", "status"}


@dataclass(frozen=True)
class CheckReport:
    """A run of a deployment's config in check mode: nothing applied.

    In a report's ``preflight``, ``config`` is the digest checked before it is
    applied and ``status`` PASSED or FAILED; in its ``drift``, ``config`` is
    the digest applied and ``status`` clean, drifted or unknown (nothing can
    tell: a script without a CHECK config). ``changes`` is the tool's summary
    of what would change (preflight) or what differs (drift), masked and
    bounded; ``reason`` says why a check failed or could not tell; ``count``
    numbers the drifts found on this digest (each time it turns drifted), so
    a correction can be asked for once per drift. ``token`` is the run token of
    the preflight entry answered (``plan --preflight`` asks for a fresh check
    with a new one).
    """

    config: str
    status: str
    changes: str = ""
    reason: str | None = None
    count: int = 0
    token: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Any, statuses: tuple[str, ...]) -> CheckReport:
        what = "check report"
        status = _need(doc, what, "status", str)
        if status not in statuses:
            raise InvalidDocument(what, f"unknown status {status!r}")
        count = doc.get("count", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidDocument(what, "field 'count' must be a whole number >= 0")
        return cls(
            config=_need_digest(doc, what, "config"),
            status=status,
            changes=str(doc.get("changes") or ""),
            reason=_text_or_none(doc.get("reason")),
            count=count,
            token=_text_or_none(doc.get("token")),
        )


def _checks(doc: dict[str, Any], key: str, statuses: tuple[str, ...]) -> dict[str, CheckReport]:
    found = doc.get(key)
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise InvalidDocument("report", f"field {key!r} is not a JSON object")
    return {str(k): CheckReport.from_dict(v, statuses) for k, v in found.items()}


@dataclass(frozen=True)
class Report:
    """An agent's whole view, rewritten after each deployment it runs.

    ``generation`` and ``manifest`` name the pointer this report answers, so a
    stale report is never mistaken for a fresh one. ``error`` carries an
    agent-level problem (a refused pointer, an unreachable blob).
    ``heartbeat`` (seconds) is how often the agent rewrites its report even
    when nothing changed, so the controller can tell a silent agent from an
    idle one; None from agents that do not beat. ``instance`` is a random id
    each agent process makes at start, and ``conflict`` says that another
    instance also writes this server's report (two agents with one server
    name); both None from older agents. ``preflight`` and ``drift`` hold the
    check-mode runs of each deployment (``CheckReport``): empty from agents
    that do not check, and left out of the document when empty.
    """

    server: str
    generation: int
    manifest: str | None
    updated_at: str
    deployments: dict[str, DeploymentReport] = field(default_factory=dict)
    error: str | None = None
    agent_version: str = ""
    heartbeat: float | None = None
    instance: str | None = None
    conflict: str | None = None
    preflight: dict[str, CheckReport] = field(default_factory=dict)
    drift: dict[str, CheckReport] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc = self._to_dict()
        # Written only when set, so the reports of older agents keep their bytes.
        for name in ("heartbeat", "instance", "conflict"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        for name in ("preflight", "drift"):
            checks: dict[str, CheckReport] = getattr(self, name)
            if checks:
                doc[name] = {k: v.to_dict() for k, v in sorted(checks.items())}
        return doc

    def _to_dict(self) -> dict[str, Any]:
        return {
            "kind": "Report",
            "server": self.server,
            "generation": self.generation,
            "manifest": self.manifest,
            "updated_at": self.updated_at,
            "deployments": {k: v.to_dict() for k, v in sorted(self.deployments.items())},
            "error": self.error,
            "agent_version": self.agent_version,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Report:
        what = "report"
        manifest = doc.get("manifest") if isinstance(doc, dict) else None
        if manifest is not None and not is_digest(manifest):
            raise InvalidDocument(what, "field 'manifest' is not a blake3 digest")
        deployments = _need(doc, what, "deployments", dict)
        error = doc.get("error")
        heartbeat = doc.get("heartbeat")
        if heartbeat is not None and (
            isinstance(heartbeat, bool) or not isinstance(heartbeat, int | float) or heartbeat <= 0
        ):
            raise InvalidDocument(what, "field 'heartbeat' must be a positive number")
        return cls(
            server=_need(doc, what, "server", str),
            generation=_need(doc, what, "generation", int),
            manifest=manifest,
            updated_at=_need(doc, what, "updated_at", str),
            deployments={k: DeploymentReport.from_dict(v) for k, v in deployments.items()},
            error=error if isinstance(error, str) else None,
            agent_version=str(doc.get("agent_version", "")),
            heartbeat=None if heartbeat is None else float(heartbeat),
            instance=_text_or_none(doc.get("instance")),
            conflict=_text_or_none(doc.get("conflict")),
            preflight=_checks(doc, "preflight", PREFLIGHT_STATUSES),
            drift=_checks(doc, "drift", DRIFT_STATUSES),
        )


def _text_or_none(value: Any) -> str | None:
    """An optional text field, read as leniently as ``error``."""
    return value if isinstance(value, str) else None


def config_for_action(derived: dict[str, Any], action: str) -> tuple[str, Any] | None:
    """The (tool, config) a derived config runs for ``action``, or None if it has none.

    A derived config of group ``component`` carries one entry per set of
    actions (as Heat's SoftwareComponent does); any other group is a single
    config that runs for every action.
    """
    if derived.get("group") != COMPONENT_GROUP:
        return str(derived.get("group", "script")), derived.get("config")
    for entry in derived.get("config", {}).get("configs", []):
        if action in entry.get("actions", ()):
            return str(entry["tool"]), entry.get("config")
    return None
