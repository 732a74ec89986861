"""``update_order: reverse``: when a server-side deployment changes, the
deployments that depend on it (clients) roll out first, reading its old
outputs, and it follows once they are all COMPLETE."""

from __future__ import annotations

from pathlib import Path

from setpoint.controller.rollout.ledger import read_ledger
from tests.controller.fleet import Fleet, component, inventory

CLIENTS = [f"app-{i}" for i in range(1, 5)]


def stack(db: str, app: str, order: str = "reverse", extra: str = "") -> str:
    return f"""\
kind: Stack
deployments:
  db:
    component: db
    servers: [db-1]
    update_order: {order}
    input_values:
      version: "{db}"
  app:
    component: app
    servers: {{group: apps}}
    update_policy: {{max_batch_size: 2}}
    input_values:
      version: "{app}"
      server: {{get_attr: [db, addr]}}
{extra}"""


def make(tmp_path: Path, text: str) -> Fleet:
    return Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(["db-1", *CLIENTS], {"apps": CLIENTS}),
            "components/db/component.yaml": component(),
            "components/app/component.yaml": component(
                "  - name: server\n    type: String\n    default: none"
            ),
            "stacks/s.yaml": text,
        },
    )


def app_inputs(fleet: Fleet, server: str) -> dict[str, str]:
    entry = fleet.entry(server, "s/app")
    assert entry is not None
    body = fleet.store.get_json_blob(entry.config)
    return {i["name"]: i["value"] for i in body["inputs"]}


def complete(fleet: Fleet, server: str, deployment: str) -> bool:
    entry = fleet.entry(server, deployment)
    report = fleet.store.read_report(server)
    got = report.deployments.get(entry.name) if report and entry else None
    return (
        got is not None
        and entry is not None
        and (got.config, got.status)
        == (
            entry.config,
            "COMPLETE",
        )
    )


def test_reverse_rolls_out_the_dependents_first(tmp_path: Path) -> None:
    fleet = make(tmp_path, stack("1", "1"))
    try:
        for _ in range(10):  # creation: the server first, as data flow says
            if fleet.step().converged:
                break
        assert app_inputs(fleet, "app-1")["server"] == "db-1:1"
        fleet.commit({"stacks/s.yaml": stack("2", "2")})
        db_published_at = None
        timeline: list[tuple[str | None, list[str]]] = []
        for n in range(30):
            outcome = fleet.run_pass()
            timeline.append(
                (fleet.version("db-1", "s/db"), [fleet.version(s, "s/app") or "" for s in CLIENTS])
            )
            if db_published_at is None and fleet.version("db-1", "s/db") == "2":
                db_published_at = n
                # Every client was COMPLETE on version 2 before the server changed,
                # and it was rendered with the old server's output.
                assert all(fleet.version(s, "s/app") == "2" for s in CLIENTS)
                assert all(complete(fleet, s, "s/app") for s in CLIENTS)
            if db_published_at is None:
                assert fleet.version("db-1", "s/db") == "1"
                if any(v == "2" for v in timeline[-1][1]):
                    assert app_inputs(fleet, "app-1")["server"] == "db-1:1"
                held = [w for w in outcome.waiting if w.deployment == "s/db"]
                assert held
                assert "update_order reverse: waits for its dependents (s/app)" in held[0].reason
            if outcome.converged:
                break
            fleet.agents_cycle()
            fleet.now += 1
        assert outcome.converged, outcome.summary()
        assert db_published_at is not None
        # The clients went in batches of two before the server moved.
        first_app = next(i for i, (_, apps) in enumerate(timeline) if "2" in apps)
        assert first_app < db_published_at
        assert timeline[first_app][1].count("2") == 2
        # Then the server's new output flows to the clients as usual.
        assert all(app_inputs(fleet, s)["server"] == "db-1:2" for s in CLIENTS)
        assert read_ledger(fleet.store).reverse == {}
    finally:
        fleet.close()


def test_parallel_keeps_dependencies_first(tmp_path: Path) -> None:
    fleet = make(tmp_path, stack("1", "1", order="parallel"))
    try:
        for _ in range(10):
            if fleet.step().converged:
                break
        fleet.commit({"stacks/s.yaml": stack("2", "2", order="parallel")})
        fleet.run_pass()
        assert fleet.version("db-1", "s/db") == "2"
        assert all(fleet.version(s, "s/app") == "1" for s in CLIENTS)
    finally:
        fleet.close()


def test_reverse_with_depends_on_only_releases_once_dependents_are_complete(
    tmp_path: Path,
) -> None:
    text = """\
kind: Stack
deployments:
  db:
    component: db
    servers: [db-1]
    update_order: reverse
    input_values: {{version: "{db}"}}
  app:
    component: app
    servers: {{group: apps}}
    depends_on: [db]
    input_values: {{version: "{app}"}}
"""
    fleet = make(tmp_path, text.format(db="1", app="1"))
    try:
        for _ in range(10):
            if fleet.step().converged:
                break
        fleet.agent("app-3").silent = True  # one client does not answer yet
        fleet.commit({"stacks/s.yaml": text.format(db="2", app="2")})
        for _ in range(5):
            fleet.step()
        assert fleet.version("db-1", "s/db") == "1"  # held: app-3 is not COMPLETE
        ledger = read_ledger(fleet.store)
        assert ledger.reverse["s/db"]["ready"] is False
        fleet.agent("app-3").silent = False
        for _ in range(10):
            if fleet.step().converged:
                break
        assert fleet.version("db-1", "s/db") == "2"
        assert all(fleet.version(s, "s/app") == "2" for s in CLIENTS)
    finally:
        fleet.close()
