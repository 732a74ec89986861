"""``notifications.yaml``: who is told when a rollout starts, fails, rolls back or converges.

Optional, at the repository root, so that who is told is itself reviewed in
pull requests::

    kind: Notifications
    targets:
      - name: ops
        type: webhook                  # a JSON body, POSTed
        url: https://hooks.example.com/setpoint
        secret_env: SETPOINT_HOOK_KEY  # optional HMAC-SHA256 key (or secret_file: PATH)
        events: [batch_failed, rollback]   # optional; default: every event
      - name: chat
        type: slack                    # a Slack-compatible incoming webhook
        url: https://hooks.slack.com/services/T000/B000/XXXX

A mistake is a problem naming file, line and field like any other in the
definitions: the commit does not deploy, and ``setpoint validate`` says so.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.model import EVENT_KINDS, TARGET_TYPES, NotifyTarget
from setpoint.controller.definitions.yamlsource import YMap

NOTIFICATIONS = "notifications.yaml"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TARGET_KEYS = ("name", "type", "url", "events", "secret_env", "secret_file")


def read_notifications(files: CommitFiles) -> tuple[NotifyTarget, ...]:
    """The commit's notification targets (none when the file is absent)."""
    checks = files.checks
    where = Where(NOTIFICATIONS, 1, "")
    if files.kind(NOTIFICATIONS) != "file":
        return ()  # absent (a symlink or submodule is reported by CommitFiles)
    doc = files.parse(NOTIFICATIONS)
    m = checks.mapping(doc, where, "the notifications") if doc is not None else None
    if m is None:
        return ()
    checks.check_keys(m, where, ("kind", "targets"), required=("targets",))
    if "kind" in m and m["kind"] != "Notifications":
        checks.error(where.at(m, "kind"), f"expected kind: Notifications, got {m['kind']!r}")
    targets: list[NotifyTarget] = []
    names: set[str] = set()
    for _, item, twhere in checks.mapping_items(m, "targets", where, "a target"):
        target = _target(checks, item, twhere)
        if target is None:
            continue
        if target.name in names:
            checks.error(twhere.at(item, "name"), f"target {target.name!r} named twice")
            continue
        names.add(target.name)
        targets.append(target)
    return tuple(targets)


def _target(checks: Checks, m: YMap, where: Where) -> NotifyTarget | None:
    before = len(checks.problems)
    checks.check_keys(m, where, _TARGET_KEYS, required=("name", "type", "url"))
    name = checks.name(m, "name", where, "", "target") if "name" in m else ""
    kind = checks.choice(m, "type", where, TARGET_TYPES, "webhook")
    url = checks.text(m, "url", where)
    if "url" in m and urlsplit(url).scheme not in ("http", "https"):
        checks.error(where.at(m, "url"), f"expected an http or https URL, got {url!r}")
    events: list[str] = []
    for event, ewhere in checks.list_of_text(m, "events", where):
        if event not in EVENT_KINDS:
            checks.error(ewhere, f"unknown event {event!r} (events: {', '.join(EVENT_KINDS)})")
        elif event not in events:
            events.append(event)
    secret_env = _secret_env(checks, m, where)
    secret_file = checks.text(m, "secret_file", where) or None
    if secret_env and secret_file:
        checks.error(where.at(m, "secret_file"), "give secret_env or secret_file, not both")
    if (secret_env or secret_file) and kind == "slack":
        checks.error(where.at(m, "type"), "a slack target takes no secret (Slack signs nothing)")
    if len(checks.problems) > before:
        return None
    return NotifyTarget(
        name=name,
        type=kind,
        url=url,
        events=tuple(events) if "events" in m else EVENT_KINDS,
        secret_env=secret_env,
        secret_file=secret_file,
    )


def _secret_env(checks: Checks, m: YMap, where: Where) -> str | None:
    value = checks.text(m, "secret_env", where) or None
    if value is not None and not _ENV_NAME.match(value):
        checks.error(where.at(m, "secret_env"), f"invalid environment variable name {value!r}")
        return None
    return value
