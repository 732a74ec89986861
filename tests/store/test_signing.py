"""Signing keys: each signs with its own seed, and each public key verifies with its own
bytes, whatever else they share a name with."""

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


def test_public_keys_of_one_name_verify_with_their_own_bytes() -> None:
    old_secret = SigningKey("ctl", bytes(32))
    new_secret = replace(old_secret, seed=bytes(range(32)))
    old_signature, new_signature = old_secret.sign(PAYLOAD), new_secret.sign(PAYLOAD)
    old = old_secret.public()
    old.verify(PAYLOAD, old_signature)  # used first, as a rotated-away key would have been
    new = replace(old, raw=new_secret.public().raw)
    new.verify(PAYLOAD, new_signature)
    new.verify(PAYLOAD, new_signature)
    with pytest.raises(SignatureError):
        new.verify(PAYLOAD, old_signature)
    with pytest.raises(SignatureError):
        old.verify(PAYLOAD, new_signature)
    old.verify(PAYLOAD, old_signature)
