"""Render at fleet scale: load a commit, render every (deployment, server), hash it.

What is timed is what a reconcile pass does before it talks to the store:
``load_model`` of the commit, ``compute_desired`` (every derived config and
every server's manifest) and the canonical JSON and digest of every manifest.
The leaders' ``d0`` reports are given COMPLETE, so every deployment is ready
and all ``servers x deployments`` pairs are rendered.

A follow-up commit is rendered by the same process with the same caches (a
running controller), so unchanged definitions are reused.
"""

from __future__ import annotations

import time
from typing import Any

from bench.synth import FleetShape
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import Model
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.render.derived import RenderCache
from setpoint.controller.rollout.desired import DesiredState, compute_desired
from setpoint.store.digest import canonical_json, digest_bytes
from setpoint.store.documents import DeploymentReport, Manifest, Report


def leader_reports(shape: FleetShape, model: Model, cache: RenderCache) -> dict[str, Report]:
    """Reports of every group leader's ``d0`` COMPLETE, as its agent would write them."""

    def nothing(_server: str) -> Manifest | None:
        return None

    first = compute_desired(model, {}, nothing, cache=cache)
    reports: dict[str, Report] = {}
    for g in range(shape.groups):
        leader = shape.leader(g)
        qualified = f"fleet-{shape.stack_of(g)}/g{g}-d0"
        digest = first.rendered[(qualified, leader)]
        reports[leader] = Report(
            server=leader,
            generation=1,
            manifest=None,
            updated_at="2026-01-01T00:00:00Z",
            deployments={
                qualified: DeploymentReport(
                    name=qualified,
                    config=digest,
                    action="CREATE",
                    status="COMPLETE",
                    outputs={"endpoint": f"{leader}:0"},
                    final=True,
                )
            },
        )
    return reports


def render_pass(
    repo: GitRepo, rev: str, reports: dict[str, Report], cache: RenderCache
) -> tuple[DesiredState, dict[str, str]]:
    """One pass's work before the store: load, render, hash every manifest."""

    def nothing(_server: str) -> Manifest | None:
        return None

    model = load_model(repo.tree(repo.resolve(rev)))
    desired = compute_desired(model, reports, nothing, cache=cache)
    # As publish does it: servers with the same desired state share one manifest.
    encoded: dict[tuple[object, ...], str] = {}
    digests = {}
    for server, manifest in desired.manifests.items():
        key = (manifest.deployments, *manifest.bundles.items())
        if key not in encoded:
            encoded[key] = digest_bytes(canonical_json(manifest.to_dict()))
        digests[server] = encoded[key]
    return desired, digests


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    got = fn(*args)
    return time.perf_counter() - start, got


def child(repo_path: str, revs: list[str], shape: FleetShape) -> dict[str, Any]:
    """In a fresh process: render ``revs[0]`` cold, then each later rev warm."""
    import resource

    from setpoint.controller.definitions import files

    with GitRepo.open(repo_path) as repo:
        base = load_model(repo.tree(repo.resolve(revs[0])))
        reports = leader_reports(shape, base, RenderCache())
        del base
        files.PARSED.clear()  # cold: nothing parsed yet
        cache = RenderCache()
        seconds, (desired, _digests) = timed(render_pass, repo, revs[0], reports, cache)
        out: dict[str, Any] = {
            "cold_s": seconds,
            "pairs": len(desired.rendered),
            "distinct_configs": len(desired.configs),
            "follow_up_s": {},
        }
        del desired
        for rev in revs[1:]:
            seconds, _ = timed(render_pass, repo, rev, reports, cache)
            out["follow_up_s"][rev] = seconds
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


if __name__ == "__main__":
    import json
    import sys

    args = json.loads(sys.argv[1])
    print(json.dumps(child(args["repo"], args["revs"], FleetShape(**args["shape"]))))
