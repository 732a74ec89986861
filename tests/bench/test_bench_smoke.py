"""Smoke test: the generator writes a loadable repository and a quick scenario runs.

Speed goals live in ``python -m bench``, not here.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from bench.render import leader_reports, render_pass
from bench.synth import FleetShape, change_one_component, change_parameter, init_fleet, rename_file
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitRepo, revert
from setpoint.controller.render.derived import RenderCache


def test_generator_and_render_scenario(tmp_path: Path) -> None:
    shape = FleetShape(servers=12, groups=3, components=4, deployments=3, stacks=2)
    repo_path = init_fleet(tmp_path, shape)
    with GitRepo.open(repo_path) as repo:
        base = repo.resolve("HEAD")
        cache = RenderCache()
        reports = leader_reports(shape, load_model(repo.tree(base)), cache)
        desired, digests = render_pass(repo, base, reports, cache)
        assert len(desired.rendered) == shape.derived
        assert not desired.waiting
        component = change_one_component(repo_path)
        change_parameter(repo_path, shape)
        renamed = rename_file(repo_path)
        _, after_rename = render_pass(repo, renamed, reports, cache)
        _, before_rename = render_pass(repo, renamed + "~1", reports, cache)
        assert after_rename == before_rename  # a moved file renders the same configs
        reverted = revert(repo_path, component)
        assert render_pass(repo, reverted, reports, cache)[1] != digests  # the parameter stays


def test_concurrency_scenario_runs_and_scales_the_one_worker_figures() -> None:
    from bench.concurrency import latency_fleet, measure, table

    rows = measure([24], 4, lambda n: latency_fleet(n, 0.001), 12, lambda _: None)
    ((one, pooled),) = rows
    assert one is not None
    assert (one.workers, pooled.workers) == (1, 4)
    assert pooled.publish.pointers == 24
    assert pooled.following.pointers == 0
    assert one.measured_at == 12
    assert one.publish.pointers == 24  # measured at 12 servers, scaled by 2
    printed = table("smoke", rows)
    assert "measured at 12 servers, scaled by 2" in printed


def test_concurrency_sequential_max_zero_skips_the_one_worker_baseline() -> None:
    from bench.concurrency import Fleet, goal, latency_fleet, measure, table

    built: list[int] = []

    def make_fleet(servers: int) -> AbstractContextManager[Fleet]:
        built.append(servers)
        return latency_fleet(servers, 0.001)

    rows = measure([24], 4, make_fleet, 0, lambda _: None)
    assert built == [24]  # no fleet of 0 servers, no one-worker pass
    ((one, pooled),) = rows
    assert one is None
    assert pooled.publish.pointers == 24
    printed = table("smoke", rows).splitlines()
    publish = next(line for line in printed if " publish " in line).split()
    assert (publish[5], publish[7]) == ("-", "-")  # 1 worker and speed-up: not measured
    pooled.servers = 10_000  # the goal line, as a 10,000-server run would print it
    verdict = goal([(None, pooled)], 20)
    assert verdict is not None
    assert "speed-up not measured" in verdict


def test_cluster_scenario_bring_up_join_and_leave_converge(tmp_path: Path) -> None:
    from bench.cluster import run

    rows = run(3, tmp_path)
    assert [(r["phase"], r["members"], r["converged"], r["rounds"]) for r in rows] == [
        ("bring-up", 3, True, 2),
        ("join", 4, True, 2),
        ("leave", 3, True, 1),
    ]
    assert [r["runs"] for r in rows] == [6, 5, 4]  # 2 each; newcomer 2 + 3; 3 + a DELETE


def test_dashboard_scenario_fetches_every_page(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.dashboard import PAGES, main

    main(["--servers", "120", "--deployments", "3", "--runs", "1", "--refresh", "0.1"])
    printed = capsys.readouterr().out
    assert "120 servers x 3 deployments (360 pairs)" in printed
    assert "overview, first (reads the fleet, then renders)" in printed
    for label, _ in PAGES:
        assert f"{label} (median)" in printed
    assert "overview 0.1 s after the last (slowest)" in printed


def test_publish_bytes_finds_every_object_that_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.publish_bytes import main

    saved = tmp_path / "saved.json"
    assert main(["--servers", "12", "--save", str(saved)]) == 0
    assert main(["--servers", "12", "--against", str(saved)]) == 0  # deterministic
    doc = json.loads(saved.read_text())
    objects = doc["objects"]
    assert "controller/ledger" in objects
    pointers = sorted(k for k in objects if k.endswith("/pointer"))
    assert len(pointers) == 12
    objects[pointers[0]] = "0" * 64  # as if a change had altered one pointer's bytes
    del objects[pointers[1]]
    saved.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["--servers", "12", "--against", str(saved)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"2 of {len(objects) + 1} objects differ from {saved}"
    assert printed[1:] == [f"  {pointers[0]}: bytes", f"  {pointers[1]}: only now"]
