"""The runs a server's report tells of, with the values of secret inputs masked.

A report keeps the *last* run of each deployment on its server (action, digest,
start and end, exit code, reason, the tails of stdout and stderr): the store
holds no older runs, so neither does anything shown from here.

Agents mask the inputs their derived config marks ``hidden`` themselves, but
a report is written by the server (an older agent did not mask), so whatever
the controller shows is masked again with the values of the inputs the derived
config marks secret, read from the config's blob. When that blob cannot be
read its secrets are unknown, and the reason and the stream tails are withheld
rather than shown unmasked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from setpoint.store.base import Store
from setpoint.store.digest import short
from setpoint.store.documents import DeploymentReport, Report
from setpoint.store.errors import StoreError
from setpoint.store.masking import mask_text, secret_values
from setpoint.store.timestamps import parse_timestamp


@dataclass(frozen=True)
class Run:
    """One deployment's last run on a server, as its report tells it, masked."""

    server: str
    deployment: str
    config: str
    action: str
    status: str
    started_at: str | None
    finished_at: str | None
    exit_code: int | None
    attempts: int
    reason: str | None
    stdout_tail: str
    stderr_tail: str
    # Why the tails are not shown (the config's secrets are unknown); None when they are.
    withheld: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None while it runs or when a time is missing."""
        start, end = parse_timestamp(self.started_at), parse_timestamp(self.finished_at)
        if start is None or end is None or end < start:
            return None
        return end - start

    def to_dict(self) -> dict[str, Any]:
        duration = self.duration
        return {
            "server": self.server,
            "deployment": self.deployment,
            "config": self.config,
            "action": self.action,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": None if duration is None else round(duration, 3),
            "exit_code": self.exit_code,
            "attempts": self.attempts,
            "reason": self.reason,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "withheld": self.withheld,
        }


class Masker:
    """Masks runs with the secrets of the derived configs they name, reading
    each config's blob once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._secrets: dict[str, tuple[str, ...] | None] = {}

    def secrets(self, digest: str) -> tuple[str, ...] | None:
        """The texts that give away a secret input of config ``digest``; None
        when its blob cannot be read."""
        if digest not in self._secrets:
            try:
                body = self.store.get_json_blob(digest, "derived config")
            except StoreError:
                self._secrets[digest] = None
            else:
                self._secrets[digest] = secret_values(body)
        return self._secrets[digest]

    def text(self, digest: str, text: str) -> str | None:
        """``text`` (what an agent said about config ``digest``: a failure's
        reason, kept in the ledger) masked with that config's secrets; None when
        they are unknown, and the text must be withheld."""
        secrets = self.secrets(digest)
        return None if secrets is None else mask_text(text, secrets)

    def run(self, server: str, got: DeploymentReport, desired: str | None = None) -> Run:
        """``got`` masked with the secrets of the config it ran (and of the one
        desired now, which may share them)."""
        ran = self.secrets(got.config)
        known = set(ran or ())
        if desired is not None and desired != got.config:
            known.update(self.secrets(desired) or ())
        secrets = sorted(known, key=lambda t: (-len(t), t))
        withheld = None
        stdout, stderr = mask_text(got.stdout_tail, secrets), mask_text(got.stderr_tail, secrets)
        reason = None if got.reason is None else mask_text(got.reason, secrets)
        if ran is None and (stdout or stderr or reason):
            withheld = _unknown(got.config)
            stdout = stderr = ""
            reason = None
        return Run(
            server=server,
            deployment=got.name,
            config=got.config,
            action=got.action,
            status=got.status,
            started_at=got.started_at,
            finished_at=got.finished_at,
            exit_code=got.exit_code,
            attempts=got.attempts,
            reason=reason,
            stdout_tail=stdout,
            stderr_tail=stderr,
            withheld=withheld,
        )


def masked_reasons(report: Report, masker: Masker) -> Report:
    """``report`` with each failure reason masked with the secrets of the config
    it names (withheld when they are unknown): what the controller carries on
    from a report (into its ledger, its outcome, the git notes) is masked."""
    deployments = dict(report.deployments)
    for name, got in report.deployments.items():
        if got.reason:
            masked = masker.text(got.config, got.reason)
            reason = masked if masked is not None else f"reason withheld: {_unknown(got.config)}"
            deployments[name] = replace(got, reason=reason)
    return replace(report, deployments=deployments)


def _unknown(digest: str) -> str:
    return f"derived config {short(digest)} cannot be read: its secrets are unknown"


def server_runs(
    store: Store, report: Report, deployment: str | None = None, masker: Masker | None = None
) -> list[Run]:
    """The last run of each deployment in ``report`` (or of ``deployment`` only),
    newest first."""
    masker = masker or Masker(store)
    runs = [
        masker.run(report.server, got)
        for name, got in report.deployments.items()
        if deployment is None or matches(name, deployment)
    ]
    return sorted(runs, key=lambda r: parse_timestamp(r.started_at) or 0.0, reverse=True)


def matches(name: str, wanted: str) -> bool:
    """``stack/deployment`` is named by itself, or by ``deployment`` alone."""
    return wanted in (name, name.split("/", 1)[-1])


def tail_lines(text: str, lines: int | None) -> list[str]:
    """The last ``lines`` lines of ``text`` (None: all), with a line that says how
    many were left out."""
    all_lines = text.splitlines()
    if lines is None or len(all_lines) <= lines:
        return all_lines
    return [f"... ({len(all_lines) - lines} earlier lines)", *all_lines[-lines:]]
