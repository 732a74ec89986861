"""The controller's render secret: what Heat ``OS::Heat::RandomString`` values
are derived from (``heat.randomstring``), so that rendering stays a pure
function of the commit, the reports, the inventory and this secret.

The file holds the base64 of 32 random bytes on one line, readable by its
owner only. ``setpoint keygen NAME`` writes it as ``NAME.render-secret`` beside
the signing key ``NAME.key``; the controller reads ``--render-secret FILE``,
else ``$SETPOINT_RENDER_SECRET``, else the ``.render-secret`` file beside its
signing key. Every controller replica (and every machine that plans) needs
the same file: another secret gives other values, and servers rerun.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from setpoint.controller.errors import SetpointError

SUFFIX = ".render-secret"
SIZE = 32


class RenderSecretError(SetpointError):
    """A render secret file that cannot be read; ``path`` and ``reason`` say why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"render secret {path}: {reason}")
        self.path = path
        self.reason = reason


def create_render_secret(path: Path) -> None:
    """Write a new render secret at ``path`` (mode 0600), refusing to overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(SIZE)).decode("ascii") + "\n")


def create_beside_signing_key(key_path: Path) -> Path:
    """The render secret beside signing key ``NAME.key`` (``NAME.render-secret``,
    where the controller looks for it), created unless it exists: a new key
    keeps the secret, or every config that uses a RandomString would run again."""
    beside = key_path.with_suffix(SUFFIX)
    if not beside.exists():
        create_render_secret(beside)
    return beside


def load_render_secret(path: Path) -> bytes:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RenderSecretError(str(path), exc.strerror or str(exc)) from exc
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RenderSecretError(str(path), f"not base64: {exc}") from exc
    if len(raw) != SIZE:
        raise RenderSecretError(str(path), f"expected {SIZE} bytes, got {len(raw)}")
    return raw


def find_render_secret(explicit: str | None, signing_key: str | None) -> bytes | None:
    """The render secret ``explicit`` names, else the one beside ``signing_key``
    (``NAME.key`` → ``NAME.render-secret``) if there is one, else ``None``."""
    if explicit:
        return load_render_secret(Path(explicit))
    if signing_key:
        beside = Path(signing_key).with_suffix(SUFFIX)
        if beside.is_file():
            return load_render_secret(beside)
    return None
