"""Who may read the dashboard: anyone on this machine by default, a token holder
when it listens on another address.

The token is checked as a bearer token (``Authorization: Bearer T``, for
scripts and Prometheus) or as the password of HTTP basic auth (any user name),
which a browser asks for by itself: no login page, no JavaScript, no cookie.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from setpoint.controller.errors import SetpointError

REALM = "setpoint"


class BindRefused(SetpointError):
    """The dashboard would listen beyond this machine with no token."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"refusing to serve on {host} without a token: anyone who reaches it would "
            "read the fleet; give --token T (or $SETPOINT_SERVE_TOKEN), or "
            "--insecure-no-auth to serve it open"
        )
        self.host = host


def is_loopback(host: str) -> bool:
    """True for an address (or ``localhost``) that only this machine reaches."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def check_bind(host: str, token: str | None, insecure_no_auth: bool) -> None:
    """Raise BindRefused for a non-loopback ``host`` without a token, unless told."""
    if not is_loopback(host) and not token and not insecure_no_auth:
        raise BindRefused(host)


def presented_token(authorization: str) -> str | None:
    """The token an ``Authorization`` header carries (bearer, or basic auth's password)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


class TokenRequired:
    """ASGI middleware: every request carries the token, or gets 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = presented_token(headers.get(b"authorization", b"").decode("latin-1"))
        if given is not None and hmac.compare_digest(given.encode("utf-8"), self.token):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", f'Basic realm="{REALM}"'.encode()),
                    (b"content-type", b"text/plain; charset=utf-8"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"a token is required\n"})
