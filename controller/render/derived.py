"""Render a deployment on a server into a derived config, and name it by its digest.

The derived config is the document heat-config hooks read, minus what the
agent adds at run time (``id`` and the ``deploy_*`` inputs). Its digest
covers everything the server runs: each action's tool and config text, the
resolved input values and which of them are secret, the outputs schema,
options, and the digests of attached files. Descriptions and defaults are left
out on purpose: rewording a description must not rerun a config on every
server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from setpoint.controller.definitions.heat.functions import substitute_inputs
from setpoint.controller.definitions.model import Component
from setpoint.store.digest import canonical_json, digest_bytes
from setpoint.store.documents import COMPONENT_GROUP


@dataclass(frozen=True)
class RenderedConfig:
    body: dict[str, Any]
    blob: bytes
    digest: str


def _file_ref(kind: str, digest: str, executable: bool) -> dict[str, Any]:
    if kind == "directory":
        return {"type": "directory", "digest": digest}
    return {"type": "file", "digest": digest, "executable": executable}


def _input(name: str, type_: str, value: Any, secret: bool) -> dict[str, Any]:
    """An input descriptor; a secret one says ``"hidden": true`` (as Heat's do) so
    the agent knows to mask its value in what it reports. The key is left out,
    not false, for the others: a config without secrets keeps its digest."""
    descriptor = {"name": name, "type": type_, "value": value}
    return {**descriptor, "hidden": True} if secret else descriptor


def derived_config(component: Component, values: dict[str, Any]) -> RenderedConfig:
    """The derived config of ``component`` with input ``values`` (already typed)."""
    inputs = [
        _input(i.name, i.type_for(value), value, i.secret)
        for i in component.inputs
        for value in [values.get(i.name, i.default)]
    ]

    def config(text: Any) -> Any:
        if component.input_key is None:
            return text
        # Heat's StructuredDeployment: {get_input: name} becomes the input's value.
        given = {i["name"]: i["value"] for i in inputs}
        return substitute_inputs(text, component.input_key, given)

    body: dict[str, Any] = {
        "name": component.name,
        "group": COMPONENT_GROUP,
        "config": {
            "configs": [
                {"actions": list(c.actions), "tool": c.tool, "config": config(c.config)}
                for c in component.configs
            ]
        },
        "inputs": inputs,
        "outputs": [{"name": o.name, "error_output": o.error_output} for o in component.outputs],
        "options": component.options,
        "files": {f.name: _file_ref(f.kind, f.digest, f.executable) for f in component.files},
    }
    blob = canonical_json(body)
    return RenderedConfig(body=body, blob=blob, digest=digest_bytes(blob))


class RenderCache:
    """Identical derived configs (same component, same values) are rendered once.

    A group of a thousand servers that all receive the same inputs costs one
    render and one hash, not a thousand.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bytes], RenderedConfig] = {}

    def render(self, component: Component, values: dict[str, Any]) -> RenderedConfig:
        key = (component.file, canonical_json(values))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = derived_config(component, values)
        return hit
