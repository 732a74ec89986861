"""One notification to one target: its body, its signature, and the POST.

A ``webhook`` target gets the event as JSON (``Event.to_dict``) with the
headers ``X-Setpoint-Event`` (the kind) and ``X-Setpoint-Delivery`` (the
event's key, the same for every retry, so a receiver can drop a repeat), and,
when the target has a secret, ``X-Setpoint-Signature: sha256=<hex>``: the
HMAC-SHA256 of the exact body bytes under the secret. A ``slack`` target gets
``{"text": ...}``, what Slack's (and Mattermost's, Rocket.Chat's) incoming
webhooks take.

The secret is read when sending, from the environment variable or file the
target names: it is never in git, and a rotated secret needs no restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from setpoint.controller.definitions.model import NotifyTarget
from setpoint.controller.errors import SetpointError
from setpoint.controller.observe.events import Event
from setpoint.store.errors import TransientError

SIGNATURE_HEADER = "X-Setpoint-Signature"
# Seconds one POST may take, connecting included: a slow receiver costs the
# sender thread this much per try, and never a pass.
TIMEOUT = 5.0


class DeliveryRefused(SetpointError):
    """A notification that trying again will not deliver (a 4xx, a missing secret)."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"notification target {target!r}: {reason}")
        self.target, self.reason = target, reason


class DeliveryFailed(TransientError):
    """A notification worth sending again (a 5xx, 429, a timeout, a refused connection)."""


def secret_of(target: NotifyTarget) -> bytes | None:
    """The target's HMAC key (None: it signs nothing); ``DeliveryRefused`` if it is
    named but cannot be read: an unsigned body would only be refused."""
    if target.secret_env:
        value = os.environ.get(target.secret_env)
        if not value:
            raise DeliveryRefused(target.name, f"${target.secret_env} is not set")
        return value.encode()
    if target.secret_file:
        try:
            return Path(target.secret_file).read_bytes().strip()
        except OSError as exc:
            raise DeliveryRefused(target.name, f"secret_file: {exc}") from exc
    return None


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Setpoint-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def request_for(target: NotifyTarget, event: Event) -> tuple[bytes, dict[str, str]]:
    """The body and headers ``target`` is sent for ``event``."""
    headers = {"Content-Type": "application/json", "User-Agent": "setpoint"}
    if target.type == "slack":
        return json.dumps({"text": f"setpoint: {event.summary}"}).encode(), headers
    body = json.dumps(event.to_dict(), sort_keys=True).encode()
    headers["X-Setpoint-Event"] = event.kind
    headers["X-Setpoint-Delivery"] = event.key
    secret = secret_of(target)
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return body, headers


def post(target: NotifyTarget, event: Event, timeout: float = TIMEOUT) -> None:
    """POST ``event`` to ``target`` once: ``DeliveryFailed`` if worth another try,
    ``DeliveryRefused`` if not."""
    body, headers = request_for(target, event)
    request = urllib.request.Request(target.url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 429 or exc.code >= 500:
            retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
            # The receiver's hint, else none: the retry loop's own backoff applies.
            delay = float(retry_after) if retry_after.isdigit() else 0.0
            raise DeliveryFailed(f"{target.name}: HTTP {exc.code}", delay) from exc
        raise DeliveryRefused(target.name, f"HTTP {exc.code} {exc.reason}") from exc
    except OSError as exc:  # URLError, timeouts, a refused connection
        raise DeliveryFailed(f"{target.name}: {exc}", 0.0) from exc
    except ValueError as exc:  # a URL urllib cannot use
        raise DeliveryRefused(target.name, str(exc)) from exc
