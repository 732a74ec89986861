"""Ed25519 signatures on pointers, with keys named the way binary caches name theirs.

A public key travels as ``NAME:BASE64`` (32 raw bytes), a secret key file
holds ``NAME:BASE64`` of the 32-byte seed. The controller signs each pointer
with one named key; an agent trusts a set of keys by name and refuses a
pointer that is unsigned, signed by a key it does not trust, or whose
signature does not match. Someone who can write to the bucket but does not
hold the controller's key cannot make any server run anything.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from setpoint.store.errors import StoreError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SignatureError(StoreError):
    """A signature that cannot be trusted; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyFormatError(StoreError):
    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"invalid {what}: {reason}")
        self.what = what
        self.reason = reason


def _split(text: str, what: str, size: int) -> tuple[str, bytes]:
    name, sep, b64 = text.strip().partition(":")
    if not sep or not _NAME_RE.match(name):
        raise KeyFormatError(what, "expected NAME:BASE64 with a name of letters, digits, . _ -")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(what, f"not base64: {exc}") from exc
    if len(raw) != size:
        raise KeyFormatError(what, f"expected {size} bytes, got {len(raw)}")
    return name, raw


@dataclass(frozen=True)
class PublicKey:
    name: str
    raw: bytes

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        name, raw = _split(text, "public key", 32)
        return cls(name, raw)

    def __str__(self) -> str:
        return f"{self.name}:{base64.b64encode(self.raw).decode('ascii')}"

    @cached_property
    def _public(self) -> Ed25519PublicKey:
        # Built once per key, as SigningKey's private key is: a pass verifies
        # every stored pointer with the same few keys.
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def verify(self, payload: bytes, signature: str) -> None:
        try:
            sig = base64.b64decode(signature, validate=True)
            self._public.verify(sig, payload)
        except (binascii.Error, ValueError, InvalidSignature) as exc:
            raise SignatureError(f"signature by key {self.name!r} does not verify") from exc


@dataclass(frozen=True)
class SigningKey:
    name: str
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        if not _NAME_RE.match(name):
            raise KeyFormatError("key name", f"{name!r}: letters, digits, . _ - only")
        return cls(name, os.urandom(32))

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        name, seed = _split(text, "secret key", 32)
        return cls(name, seed)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        try:
            return cls.parse(Path(path).read_text())
        except OSError as exc:
            raise KeyFormatError("secret key file", f"{path}: {exc.strerror or exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the secret key, readable by its owner only, refusing to overwrite."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.secret_text() + "\n")

    def secret_text(self) -> str:
        return f"{self.name}:{base64.b64encode(self.seed).decode('ascii')}"

    @cached_property
    def _private(self) -> Ed25519PrivateKey:
        # Derived once per key: deriving it from the seed costs as much as a
        # signature, and a fleet-wide pass signs a pointer per server.
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def public(self) -> PublicKey:
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return PublicKey(self.name, raw)

    def sign(self, payload: bytes) -> str:
        signature = self._private.sign(payload)
        return base64.b64encode(signature).decode("ascii")


def parse_trusted(keys: dict[str, str]) -> dict[str, PublicKey]:
    """A ``{name: "NAME:BASE64"}`` map checked into ``{name: PublicKey}``."""
    out = {}
    for name, text in keys.items():
        key = PublicKey.parse(text)
        if key.name != name:
            raise KeyFormatError("trusted key", f"entry {name!r} holds key named {key.name!r}")
        out[name] = key
    return out


def verify_signed(
    trusted: dict[str, PublicKey], key_name: str | None, signature: str | None, payload: bytes
) -> None:
    """Raise ``SignatureError`` unless ``payload`` is signed by a trusted key."""
    if not key_name or not signature:
        raise SignatureError("the pointer is not signed")
    key = trusted.get(key_name)
    if key is None:
        known = ", ".join(sorted(trusted)) or "none"
        raise SignatureError(f"signed by key {key_name!r}, which is not trusted (trusted: {known})")
    key.verify(payload, signature)
