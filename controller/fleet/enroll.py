"""Enrolment: what a new server's agent needs to start, and nothing more.

``bootstrap_for`` builds the document ``setpoint-agent --bootstrap`` reads:
the server's name, the store's location as the agent reaches it (a path for
a local store; capability URLs for Swift and S3), and the public keys whose
signatures it believes. ``cloud_init`` wraps it in user-data that installs
and starts the agent on first boot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass

from setpoint.controller.converge.capabilities import DEFAULT_TTL, issue
from setpoint.controller.errors import SetpointError
from setpoint.store.base import Store
from setpoint.store.bootstrap import Bootstrap
from setpoint.store.documents import is_server_name


class EnrollError(SetpointError):
    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"cannot enroll {server!r}: {reason}")
        self.server = server
        self.reason = reason


def check_listed(server: str, servers: Collection[str], inventory: str, commit: str) -> None:
    """Refuse to enroll a server the inventory does not list: nothing would ever
    be published to it, and its agent would poll for a pointer that never comes
    (a typo, or a server added to the inventory but not yet committed)."""
    if server in servers:
        return
    known = ", ".join(sorted(servers)) or "none"
    raise EnrollError(server, f"not in {inventory} at {commit[:12]} (servers: {known})")


@dataclass(frozen=True)
class AgentSettings:
    state_dir: str = "/var/lib/setpoint-agent"
    interval: float = 10.0
    package: str = "setpoint"


def bootstrap_for(
    store: Store,
    server: str,
    trusted_keys: dict[str, str],
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
    scoped_keys: bool = False,
) -> Bootstrap:
    """``scoped_keys`` (S3): a per-server access key limited by policy, not URLs."""
    if not is_server_name(server):
        raise EnrollError(server, "not a valid server name")
    if not trusted_keys:
        raise EnrollError(server, "no signing key: give --signing-key (see 'setpoint keygen')")
    if scoped_keys:
        from setpoint.controller.fleet.s3keys import grant

        return Bootstrap(
            server=server, trusted_keys=trusted_keys, capabilities=grant(store, server)
        )
    now = time.time() if now is None else now
    # Blob URLs (S3) come with each pointer; the bootstrap reads the pointer and
    # writes the report only.
    caps = issue(store, server, (), now, ttl)
    if caps is None:
        if store.url.startswith("memory://"):
            raise EnrollError(server, "a memory:// store cannot be reached by an agent")
        return Bootstrap(server=server, trusted_keys=trusted_keys, store_url=store.url)
    return Bootstrap(server=server, trusted_keys=trusted_keys, capabilities=caps)


def cloud_init(boot: Bootstrap, settings: AgentSettings = AgentSettings()) -> str:
    """``#cloud-config`` user-data: write the bootstrap, install the agent, start it."""
    doc = json.dumps(boot.to_dict(), indent=2, sort_keys=True)
    unit = f"""[Unit]
Description=setpoint agent
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/opt/setpoint-agent/bin/setpoint-agent --bootstrap /etc/setpoint/bootstrap.json --state-dir {settings.state_dir} --interval {settings.interval:g}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""  # noqa: E501
    indented_doc = "\n".join("      " + line for line in doc.splitlines())
    indented_unit = "\n".join("      " + line for line in unit.splitlines())
    return f"""#cloud-config
write_files:
  - path: /etc/setpoint/bootstrap.json
    permissions: "0600"
    content: |
{indented_doc}
  - path: /etc/systemd/system/setpoint-agent.service
    permissions: "0644"
    content: |
{indented_unit}
runcmd:
  - [python3, -m, venv, /opt/setpoint-agent]
  - [/opt/setpoint-agent/bin/pip, install, --quiet, {settings.package}]
  - [systemctl, daemon-reload]
  - [systemctl, enable, --now, setpoint-agent.service]
"""
