"""Derived configs on the server: fetched and verified, cached, their files in place.

A config is read from the local cache (re-verified on every read) or from the
store, and checked for the shape a hook needs before anything may run it. What
no deployment can need any more is pruned from the cache.
"""

from __future__ import annotations

import shutil
from typing import Any

from setpoint.agentshim.errors import RefusedDocument
from setpoint.agentshim.files import config_files, materialize
from setpoint.agentshim.state import AgentState, Layout, cache_config, cached_config
from setpoint.store import Manifest, Pointer, Store
from setpoint.store.documents import loads_object


def check_config(digest: str, derived: dict[str, Any]) -> None:
    """The shape a derived config needs before a hook may see it."""
    what = f"config {digest}"
    if not isinstance(derived.get("group", "script"), str):
        raise RefusedDocument(what, "'group' is not a string")
    for key in ("inputs", "outputs"):
        items = derived.get(key) or []
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
        ):
            raise RefusedDocument(what, f"{key!r} is not a list of named items")
    if not isinstance(derived.get("options") or {}, dict):
        raise RefusedDocument(what, "'options' is not a map")
    if derived.get("group") == "component":
        body = derived.get("config")
        configs = body.get("configs") if isinstance(body, dict) else None
        if not isinstance(configs, list) or not all(
            isinstance(c, dict)
            and isinstance(c.get("tool"), str)
            and isinstance(c.get("actions"), list)
            for c in configs
        ):
            raise RefusedDocument(what, "a component's config needs 'configs': [{actions, tool}]")
    config_files(derived)


def load_config(store: Store, layout: Layout, digest: str) -> dict[str, Any]:
    """A derived config from the local cache (re-verified) or from the store."""
    data = cached_config(layout, digest)
    if data is None:
        data = store.get_blob(digest)
        derived = loads_object(data, f"config {digest}")
        check_config(digest, derived)
        cache_config(layout, digest, data)
    else:
        derived = loads_object(data, f"config {digest}")
        check_config(digest, derived)
    return derived


def fetch(
    store: Store, layout: Layout, pointer: Pointer
) -> tuple[Manifest, dict[str, dict[str, Any]]]:
    """The manifest and every config it names (its preflight entries' too),
    verified, cached, files in place."""
    manifest = Manifest.from_dict(store.get_json_blob(pointer.manifest, "manifest"))
    configs: dict[str, dict[str, Any]] = {}
    for entry in manifest.fetched:
        if entry.config not in configs:
            configs[entry.config] = load_config(store, layout, entry.config)
    for digest, derived in configs.items():
        materialize(store, layout, digest, derived, manifest.bundles)
    return manifest, configs


def prune(layout: Layout, state: AgentState) -> None:
    """Drop cached configs and files no deployment can need any more."""
    keep = set()
    if state.manifest_doc is not None:
        keep |= {e.config for e in state.manifest_doc.fetched}
    for dep in state.deployments.values():
        keep.add(dep.entry.config)
        if dep.succeeded:
            keep.add(dep.succeeded)
    keep_hex = {d.removeprefix("blake3:") for d in keep}
    for path in list(layout.configs.glob("*.json")) if layout.configs.is_dir() else []:
        if path.stem not in keep_hex:
            path.unlink(missing_ok=True)
    if layout.files.is_dir():
        for path in layout.files.iterdir():
            if path.name not in keep_hex:
                shutil.rmtree(path, ignore_errors=True)
