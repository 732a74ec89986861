"""Signing keys: each signs with its own seed, whatever else it shares a name with."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from setpoint.store.signing import SignatureError, SigningKey

PAYLOAD = b'{"generation":1}'


def test_a_signature_is_the_seed_s_ed25519_signature_every_time() -> None:
    key = SigningKey("ctl", bytes(range(32)))
    first, again = key.sign(PAYLOAD), key.sign(PAYLOAD)
    assert first == again
    expected = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).sign(PAYLOAD)
    assert SigningKey.parse(key.secret_text()).sign(PAYLOAD) == first
    assert first == base64.b64encode(expected).decode("ascii")
    key.public().verify(PAYLOAD, first)


def test_keys_of_one_name_sign_with_their_own_seeds() -> None:
    old = SigningKey("ctl", bytes(32))
    old.sign(PAYLOAD)  # used first, as a rotated-away key would have been
    new = replace(old, seed=bytes(range(32)))
    signature = new.sign(PAYLOAD)
    assert signature != old.sign(PAYLOAD)
    new.public().verify(PAYLOAD, signature)
    assert new.public() != old.public()
    with pytest.raises(SignatureError):
        old.public().verify(PAYLOAD, signature)
