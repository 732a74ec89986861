"""Render a past commit again, for the bytes of the blobs it published.

Render is a pure function of (commit, reported outputs, inventory): the
configs, attachments and manifests a commit renders now are byte for byte the
blobs it published then, unless an input reads an output that was reported
differently since. ``fsck --repair`` puts lost blobs back from this;
``gc --keep-commits`` keeps what recent commits render.
"""

from __future__ import annotations

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.rollout.desired import compute_desired
from setpoint.store.base import Store
from setpoint.store.digest import canonical_json, digest_bytes
from setpoint.store.documents import Manifest, Report
from setpoint.store.errors import InvalidDocument


def rendered_blobs(
    repo: GitRepo,
    store: Store,
    commit: str,
    env: str | None,
    render_secret: bytes | None = None,
) -> dict[str, bytes]:
    """Every blob ``commit`` renders with the outputs reported now: configs,
    attachments (zips, files, MIME bodies) and each server's manifest."""
    model = load_model(repo.tree(commit), env=env, render_secret=render_secret)
    reports: dict[str, Report] = {}
    for server in model.servers_in_use():
        try:
            report = store.read_report(server)
        except InvalidDocument:
            continue
        if report is not None and report.server == server:
            reports[server] = report

    def nothing_previous(_server: str) -> Manifest | None:
        return None

    desired = compute_desired(model, reports, nothing_previous)
    out: dict[str, bytes] = dict(desired.attachments)
    out.update({digest: rendered.blob for digest, rendered in desired.configs.items()})
    for manifest in desired.manifests.values():
        blob = canonical_json(manifest.to_dict())
        out[digest_bytes(blob)] = blob
    return out
