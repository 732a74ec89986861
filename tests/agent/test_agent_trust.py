"""Signed publication: the agent believes only pointers signed by a key it trusts.

Someone who can write to the store but does not hold the controller's key
cannot make the server run anything: a tampered pointer, manifest or blob and
a replayed old pointer are each refused, the last good configs keep running,
and the report says why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from agenttest import SERVER, Publisher, lines, script, sign

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.trust import Trust
from setpoint.store import blob_key, pointer_key
from setpoint.store.digest import canonical_json
from setpoint.store.memory import MemoryStore
from setpoint.store.signing import SigningKey

K1 = SigningKey.generate("ctl-1")
K2 = SigningKey.generate("ctl-2")
TRUST_K1 = {"ctl-1": str(K1.public())}


def counting(path: Path, body: str = "") -> dict[str, object]:
    return script(f"echo run >> {path}\n{body}")


def signed_publisher(store: MemoryStore) -> Publisher:
    return Publisher(store, signing_key=K1, trust=TRUST_K1)


def error_of(store: MemoryStore) -> str:
    report = store.read_report(SERVER)
    assert report is not None
    assert report.error is not None
    return report.error


def test_signed_pointer_runs(
    store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    signed_publisher(store).publish({"app/web": counting(runs)})
    agent = make_agent(trust=Trust(keys=TRUST_K1))
    agent.run_once()
    assert lines(runs) == ["run"]
    report = store.read_report(SERVER)
    assert report is not None
    assert report.error is None
    assert report.deployments["app/web"].status == "COMPLETE"


def test_unsigned_pointer_is_refused(
    store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    publisher.publish({"app/web": counting(runs)})
    make_agent(trust=Trust(keys=TRUST_K1)).run_once()
    assert lines(runs) == []
    assert "the pointer is not signed" in error_of(store)


def test_pointer_signed_by_an_unknown_key_is_refused(
    store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    Publisher(store, signing_key=K2).publish({"app/web": counting(runs)})
    make_agent(trust=Trust(keys=TRUST_K1)).run_once()
    assert lines(runs) == []
    assert "signed by key 'ctl-2', which is not trusted (trusted: ctl-1)" in error_of(store)


def test_tampering_and_replay_are_refused_and_last_good_configs_kept(
    store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    publisher = signed_publisher(store)
    first = publisher.publish({"app/web": counting(runs)})
    agent = make_agent(trust=Trust(keys=TRUST_K1))
    agent.run_once()
    assert lines(runs) == ["run"]

    # 1. A tampered pointer: someone with write access points at their own manifest.
    evil = Publisher(store)  # writes blobs, no key
    evil_pointer = evil.publish({"app/web": counting(runs, "echo pwned")}, generation=5)
    forged = replace(first, generation=5, manifest=evil_pointer.manifest)
    store.corrupt(pointer_key(SERVER), canonical_json(forged.to_dict()))
    agent.run_once()
    assert "signature by key 'ctl-1' does not verify" in error_of(store)
    assert lines(runs) == ["run"]

    # 2. A tampered manifest behind a correctly signed pointer.
    second = publisher.publish({"app/web": counting(runs, "echo v2")})
    manifest = store.get_json_blob(second.manifest)
    manifest["deployments"][0]["timeout"] = 1.0
    store.corrupt(blob_key(second.manifest), json.dumps(manifest).encode())
    agent.run_once()
    assert "digest mismatch" in error_of(store)
    assert lines(runs) == ["run"]

    # 3. A tampered config blob.
    publisher.publish({"app/web": counting(runs, "echo v3")})
    config = publisher.digests["app/web"]
    store.corrupt(blob_key(config), b'{"group": "script", "config": "echo pwned"}')
    agent.run_once()
    assert "digest mismatch" in error_of(store)
    assert lines(runs) == ["run"]

    # 4. A replayed old pointer (validly signed, but older than what was accepted).
    publisher.publish({"app/web": counting(runs, "echo v4")})
    agent.run_once()
    assert lines(runs) == ["run", "run"]  # generation 4 ran
    store.corrupt(pointer_key(SERVER), canonical_json(first.to_dict()))
    agent.run_once()
    assert "lower than generation 4 already accepted (anti-rollback)" in error_of(store)
    assert lines(runs) == ["run", "run"]
    report = store.read_report(SERVER)
    assert report is not None
    assert report.generation == 4
    assert report.deployments["app/web"].status == "COMPLETE"


def test_a_new_key_announced_by_the_old_one_takes_over(
    store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    both = {**TRUST_K1, "ctl-2": str(K2.public())}
    publisher = Publisher(store, signing_key=K1, trust=both)
    publisher.publish({"app/web": counting(runs)})
    agent = make_agent(trust=Trust(keys=TRUST_K1))
    agent.run_once()
    assert lines(runs) == ["run"]

    # The controller switches to the new key and retires the old one.
    publisher.signing_key, publisher.trust = K2, {"ctl-2": str(K2.public())}
    publisher.publish({"app/web": counting(runs, "echo v2")})
    make_agent(trust=Trust(keys=TRUST_K1)).run_once()  # a restart keeps what it learned
    assert lines(runs) == ["run", "run"]

    # Now the old key is no longer believed.
    publisher.signing_key, publisher.trust = K1, TRUST_K1
    publisher.publish({"app/web": counting(runs, "echo v3")})
    agent = make_agent(trust=Trust(keys=TRUST_K1))
    agent.run_once()
    assert "signed by key 'ctl-1', which is not trusted (trusted: ctl-2)" in error_of(store)
    assert lines(runs) == ["run", "run"]


def test_a_trust_set_without_its_own_key_is_refused(
    store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    Publisher(store, signing_key=K1, trust={"ctl-2": str(K2.public())}).publish(
        {"app/web": counting(runs)}
    )
    make_agent(trust=Trust(keys=TRUST_K1)).run_once()
    assert "does not include its own signing key 'ctl-1'" in error_of(store)
    assert lines(runs) == []


def test_signing_roundtrip_and_key_files(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    K1.save(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = SigningKey.load(path)
    assert loaded.public() == K1.public()
    pointer = sign(Publisher(MemoryStore("x")).publish({"a/b": script("true")}), loaded, TRUST_K1)
    K1.public().verify(pointer.payload(), pointer.signature or "")
