"""``python -m bench``: run every benchmark scenario, print a table, write JSON.

``python -m bench`` runs the full set (10,000 servers x 10 deployments, 200
agent processes); ``python -m bench --quick`` a small one for developers
(under two minutes). Results go to ``bench/results/<time>.json`` (or
``--json FILE``). Each timed figure is the median of ``--runs`` runs; the
machine's core count is recorded beside them.

Store request counts and the fleet run on a local store directory and on
OpenStack Swift: a throw-away Swift started with ``tools/swift-saio.sh`` when
it is installed (``.ci/install-swift.sh``; ``--swift off`` skips it), or the
one ``SETPOINT_BENCH_SWIFT`` names (a store URL such as ``swift://bench`` with
the ``ST_*`` variables set). ``SETPOINT_BENCH_S3`` adds an S3 store URL.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from bench import agent_cost, baselines, fleet, store_requests
from bench import swift as bench_swift
from bench.render import leader_reports, render_pass
from bench.synth import FleetShape, change_one_component, change_parameter, init_fleet, rename_file
from setpoint.controller import logs
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitRepo, revert
from setpoint.controller.render.derived import RenderCache
from setpoint.store.url import open_store

ROOT = Path(__file__).resolve().parents[1]
FULL = FleetShape(servers=10_000, groups=100, components=20, deployments=10, stacks=5)
QUICK = FleetShape(servers=1_000, groups=20, components=10, deployments=10, stacks=2)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def render_scenario(repo: Path, revs: list[str], shape: FleetShape, runs: int) -> dict[str, Any]:
    arg = json.dumps({"repo": str(repo), "revs": revs, "shape": dataclasses.asdict(shape)})
    got = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-m", "bench.render", arg],
            capture_output=True,
            text=True,
            check=True,
            env=_env(),
        )
        got.append(json.loads(out.stdout))
    follow = {
        rev: statistics.median(g["follow_up_s"][rev] for g in got) for rev in got[0]["follow_up_s"]
    }
    return {
        "pairs": got[0]["pairs"],
        "distinct_configs": got[0]["distinct_configs"],
        "cold_s": statistics.median(g["cold_s"] for g in got),
        "peak_rss_mb": statistics.median(g["peak_rss_mb"] for g in got),
        "follow_up_s": follow,
    }


def plan_scenario(repo: Path, base: str, head: str, runs: int) -> dict[str, Any]:
    setpoint = Path(sys.executable).with_name("setpoint")
    cmd = [str(setpoint), "plan", "--repo", str(repo), "--format", "json", base, head]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=_env())
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times)}


def heat_scenario(repo: Path, shape: FleetShape, base: str, head: str) -> dict[str, Any]:
    with GitRepo.open(repo) as git:
        model = load_model(git.tree(base))
        reports = leader_reports(shape, model, RenderCache())
        before, _ = render_pass(git, base, reports, RenderCache())
        after, _ = render_pass(git, head, reports, RenderCache())
    return baselines.heat_change(before, after)


def fleet_scale(shape: FleetShape, runs: int, show: Callable[[str, Any], None]) -> None:
    """Render, plan and the two baselines on the full synthetic repository."""
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-") as tmp:
        repo = init_fleet(Path(tmp), shape)
        with GitRepo.open(repo) as git:
            base = git.resolve("HEAD")
        component = change_one_component(repo)
        parameter = change_parameter(repo, shape)
        renamed = rename_file(repo)
        reverted = revert(repo, component)
        show(
            "render",
            render_scenario(repo, [base, component, parameter, renamed, reverted], shape, runs),
        )
        show("plan", plan_scenario(repo, base, component, runs))
        show("heat_baseline", heat_scenario(repo, shape, base, component))
        show("git_pull_baseline", baselines.git_pull(repo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for developers")
    parser.add_argument("--runs", type=int, help="runs per timed figure (default 5, quick 3)")
    parser.add_argument("--agents", type=int, help="agent processes (default 200, quick 20)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--stores-only",
        action="store_true",
        help="skip render, plan and the baselines: store requests, agent cost and fleet only",
    )
    parser.add_argument(
        "--swift",
        choices=("auto", "start", "off"),
        default="auto",
        help="auto (default): SETPOINT_BENCH_SWIFT if set, else start a local Swift when "
        "installed; start: start one or fail; off: no Swift",
    )
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        swift = _swift(args.swift, stack)
        return _run(args, swift)


def _swift(mode: str, stack: ExitStack) -> Callable[[], str] | None:
    """A maker of fresh Swift store URLs, or None (no Swift this run)."""
    given = os.environ.get("SETPOINT_BENCH_SWIFT")
    if mode == "off":
        return None
    if given and mode == "auto":
        return lambda: given
    why = bench_swift.missing()
    if why is not None:
        if mode == "start":
            raise SystemExit(f"python -m bench --swift start: {why}")
        print(f"swift: skipped ({why})", flush=True)
        return None
    return stack.enter_context(bench_swift.local_swift())


def _run(args: argparse.Namespace, swift: Callable[[], str] | None) -> int:
    logs.configure("warning")
    shape = QUICK if args.quick else FULL
    runs = args.runs or (3 if args.quick else 5)
    agents = args.agents or (20 if args.quick else 200)
    results: dict[str, Any] = {
        "cores": os.cpu_count(),
        "quick": args.quick,
        "shape": dataclasses.asdict(shape),
        "runs": runs,
    }

    def show(name: str, value: Any) -> None:
        results[name] = value
        print(f"{name}: {json.dumps(value, sort_keys=True)}", flush=True)

    if not args.stores_only:
        fleet_scale(shape, runs, show)

    small = FleetShape(servers=min(shape.servers, 1000), groups=20, deployments=10)
    urls = {"local": ""}
    if swift is not None:
        urls["swift"] = swift()
    if os.environ.get("SETPOINT_BENCH_S3"):
        urls["s3"] = os.environ["SETPOINT_BENCH_S3"]
    for name, given in urls.items():
        with tempfile.TemporaryDirectory(prefix="setpoint-bench-store-") as tmp:
            url = given or tmp
            requests = store_requests.measure(partial(open_store, url), small)
            print(store_requests.table(name, requests), flush=True)
            results[f"requests_{name}"] = requests
            show(
                f"agent_store_poll_{name}",
                agent_cost.store_poll(partial(open_store, url), small.server(0)),
            )

    with tempfile.TemporaryDirectory(prefix="setpoint-bench-agent-store-") as tmp:
        one = FleetShape(servers=1, groups=1, components=2, deployments=3, stacks=1)
        repo = init_fleet(Path(tmp) / "defs", one)
        store = Path(tmp) / "store"
        with GitRepo.open(repo) as git:
            reconciler = Reconciler(git, open_store(str(store)))
            show(
                "agent_process",
                agent_cost.agent_process(
                    str(store), one.server(0), lambda: reconciler.run_pass().converged
                ),
            )

    with tempfile.TemporaryDirectory(prefix="setpoint-bench-fleet-store-") as tmp:
        show("fleet_local", fleet.measure(partial(open_store, tmp), agents))
    if swift is not None:
        url = swift()
        show("fleet_swift", fleet.measure(partial(open_store, url), agents))

    out = args.json or ROOT / "bench" / "results" / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
