"""A secret input says so in the derived config (``"hidden": true``, as Heat's
do), so the agent can mask its value; a config without secrets keeps the
digest it always had."""

from __future__ import annotations

from setpoint.controller.definitions.model import Component, ConfigEntry, InputDef
from setpoint.controller.render.derived import derived_config
from setpoint.store.digest import canonical_json, digest_bytes


def component(*inputs: InputDef) -> Component:
    return Component(
        name="app",
        file="components/app.yaml",
        description="",
        inputs=inputs,
        outputs=(),
        configs=(ConfigEntry("script", ("CREATE",), "echo hi"),),
        files=(),
        options={},
    )


def test_a_secret_input_is_marked_hidden() -> None:
    rendered = derived_config(
        component(InputDef("user", "String"), InputDef("password", "String", secret=True)),
        {"user": "admin", "password": "pw"},
    )
    assert rendered.body["inputs"] == [
        {"name": "user", "type": "String", "value": "admin"},
        {"name": "password", "type": "String", "value": "pw", "hidden": True},
    ]


def test_a_config_without_secrets_keeps_its_digest() -> None:
    rendered = derived_config(component(InputDef("user", "String")), {"user": "admin"})
    # The body as it was rendered before inputs could be marked hidden.
    before = {
        "name": "app",
        "group": "component",
        "config": {"configs": [{"actions": ["CREATE"], "tool": "script", "config": "echo hi"}]},
        "inputs": [{"name": "user", "type": "String", "value": "admin"}],
        "outputs": [],
        "options": {},
        "files": {},
    }
    assert rendered.digest == digest_bytes(canonical_json(before))
