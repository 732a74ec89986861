"""The ledger is written when, and only when, its content changed.

The ledger remembers what it last read or wrote to tell. These tests change
values nested inside what was read or written (the same objects the ledger's
fields hold, unless it keeps a copy of its own), which a remembered document
sharing them would miss.
"""

from __future__ import annotations

from pathlib import Path

from setpoint.controller.rollout.ledger import LEDGER, Ledger, Rollout, read_ledger, write_ledger
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey

ENTRY = {"name": "app", "config": "blake3:" + "a" * 64}


def stored_ledger(store: LocalStore) -> Ledger:
    ledger = Ledger(
        rollouts={"s/app": Rollout("s/app", "c1", good={"web-1": dict(ENTRY)})},
        reverse={"s/db": {"targets": {"web-1": "blake3:" + "b" * 64}, "ready": False}},
    )
    assert write_ledger(store, ledger)
    return ledger


def test_an_unchanged_ledger_is_not_written_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    written = stored_ledger(store)
    store.stats.reset()
    assert not write_ledger(store, written)
    assert not write_ledger(store, read_ledger(store))
    assert store.stats.writes == 0


def test_a_change_nested_in_what_was_read_is_written(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    stored_ledger(store)
    ledger = read_ledger(store)
    ledger.reverse["s/db"]["targets"]["web-1"] = "blake3:" + "c" * 64
    assert ledger.changed
    assert write_ledger(store, ledger)
    assert read_ledger(store).reverse["s/db"]["targets"] == {"web-1": "blake3:" + "c" * 64}


def test_a_change_nested_in_what_was_written_is_written(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    ledger = stored_ledger(store)
    good = ledger.rollouts["s/app"].good["web-1"]
    assert good is not None
    good["config"] = "blake3:" + "d" * 64
    assert ledger.changed
    assert write_ledger(store, ledger)
    assert read_ledger(store).rollouts["s/app"].good["web-1"] == good
    assert not read_ledger(store).changed


def test_a_lost_ledger_is_replaced_even_when_empty(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    key = SigningKey.generate("ctl")
    store.write_controller_doc(LEDGER, {"kind": "ControllerLedger", "rollouts": {}})
    lost = read_ledger(store, {key.name: key.public()})  # unsigned: not trusted, lost
    assert lost.rollouts == {}
    assert write_ledger(store, lost, key)
    assert read_ledger(store, {key.name: key.public()}).signed_by == "ctl"
