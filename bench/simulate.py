"""A simulated agent: reads its pointer and manifest, reports everything COMPLETE.

It answers the way a real agent does after its hooks succeed (same report
document, outputs derived from the inputs), without running hooks, so
benchmarks can measure the controller and the store alone.
"""

from __future__ import annotations

from setpoint.store.base import Store
from setpoint.store.documents import DeploymentReport, Manifest, Report


def answer(store: Store, server: str) -> bool:
    """Report the server's current manifest COMPLETE; False when there is no pointer."""
    pointer = store.read_pointer(server)
    if pointer is None:
        return False
    previous = store.read_report(server)
    if previous is not None and previous.generation == pointer.generation:
        return True
    manifest = Manifest.from_dict(store.get_json_blob(pointer.manifest))
    deployments = {}
    for entry in manifest.deployments:
        old = previous.deployments.get(entry.name) if previous else None
        if old is not None and old.config == entry.config:
            deployments[entry.name] = old
            continue
        config = store.get_json_blob(entry.config)
        deployments[entry.name] = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action="CREATE" if old is None else "UPDATE",
            status="COMPLETE",
            outputs={o["name"]: f"{server}:{o['name']}" for o in config["outputs"]},
            final=True,
        )
    store.write_report(
        Report(
            server=server,
            generation=pointer.generation,
            manifest=pointer.manifest,
            updated_at="2026-01-01T00:00:00Z",
            deployments=deployments,
        )
    )
    return True
