"""A Heat template's config resources (SoftwareConfig, StructuredConfig,
SoftwareComponent, MultipartMime, CloudConfig): what each gives the
deployments that use it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from setpoint.controller.definitions.checks import Where
from setpoint.controller.definitions.fields import read_actions
from setpoint.controller.definitions.heat.functions import cloud_config, multipart_mime
from setpoint.controller.definitions.heat.intrinsics import Evaluator
from setpoint.controller.definitions.heat.resources import (
    CONFIG_TYPES,
    Resource,
    TemplateScope,
)
from setpoint.controller.definitions.intrinsics import INVALID, has_deferred
from setpoint.controller.definitions.model import (
    DEFAULT_DEPLOYMENT_ACTIONS,
    INPUT_TYPES,
    ConfigEntry,
    InputDef,
    OutputDef,
)
from setpoint.controller.definitions.values import kind_of, plain
from setpoint.controller.definitions.yamlsource import YList, YMap
from setpoint.store.documents import COMPONENT_GROUP, LIFECYCLE_ACTIONS

UNGROUPED = "Heat::Ungrouped"
CONFIG_KEYS = {
    "OS::Heat::SoftwareConfig": ("group", "config", "inputs", "outputs", "options"),
    "OS::Heat::StructuredConfig": ("group", "config", "inputs", "outputs", "options"),
    "OS::Heat::SoftwareComponent": ("configs", "inputs", "outputs", "options"),
    "OS::Heat::MultipartMime": ("parts", "group"),
    "OS::Heat::CloudConfig": ("cloud_config",),
}


@dataclass
class Config:
    """What a config resource gives a deployment."""

    group: str
    entries: tuple[ConfigEntry, ...]
    inputs: tuple[InputDef, ...]
    outputs: tuple[OutputDef, ...]
    options: dict[str, Any]
    text: Any  # the ``config`` a MultipartMime part takes from it


def _single(group: str, text: str) -> Config:
    """A config of one text for every action, with no inputs or outputs."""
    return Config(group, (ConfigEntry(group, LIFECYCLE_ACTIONS, text),), (), (), {}, text)


class ConfigReader:
    """The config resources of one template, each read once."""

    def __init__(self, scope: TemplateScope, evaluator: Evaluator) -> None:
        self.scope = scope
        self.checks = scope.checks
        self.evaluator = evaluator
        self.configs: dict[str, Config | None] = {}

    def of_deployment(self, res: Resource) -> Config | None:
        """The config deployment ``res`` names with ``config: {get_resource: ...}``."""
        ref = res.props.get("config")
        if isinstance(ref, YMap) and list(ref) == ["get_resource"]:
            target = ref["get_resource"]
            resources = self.scope.resources
            res_type = (
                resources[target].type if isinstance(target, str) and target in resources else None
            )
            if res_type in CONFIG_TYPES:
                return self.config(target)
        return None

    def was_read(self, rname: str) -> bool:
        """Whether a deployment (or a MultipartMime it runs) asked for config ``rname``."""
        return rname in self.configs

    def config(self, rname: str) -> Config | None:
        """The config resource ``rname``; ``None`` when it has a problem (reported)."""
        if rname in self.configs:
            return self.configs[rname]
        self.configs[rname] = None  # a config that refers to itself finds nothing
        res = self.scope.resources[rname]
        c = res.props_where
        props = res.props
        self.checks.check_keys(props, c, CONFIG_KEYS[res.type])
        # A MultipartMime's parts name other configs: read by ``mime``.
        kept = YMap(
            {k: v for k, v in props.items() if k != "parts"},
            line=props.line,
            key_lines=props.key_lines,
        )
        got = self.evaluator.evaluate(kept, c)
        if got is INVALID:
            return None
        if not isinstance(got, dict):  # properties that were one function call
            self.checks.error(c, f"expected properties (a mapping), got {kind_of(got)}")
            return None
        if has_deferred(got):
            self.checks.error(
                c,
                f"the config {rname!r} uses a deployment's attribute: pass it to the "
                "deployment as an input instead",
            )
            return None
        config = self.build(res, c, got)
        self.configs[rname] = config
        return config

    def build(self, res: Resource, c: Where, got: dict[str, Any]) -> Config | None:
        """The config of ``res`` from its evaluated properties ``got``."""
        props = res.props
        inputs = self.inputs(props, c)
        outputs = self.outputs(props, c)
        options = got.get("options") or {}
        if not isinstance(options, dict):
            self.checks.error(c.at(props, "options"), "options must be a mapping")
            options = {}
        if res.type in ("OS::Heat::SoftwareConfig", "OS::Heat::StructuredConfig"):
            group = got.get("group") or UNGROUPED
            text = got.get("config")
            if res.type == "OS::Heat::SoftwareConfig" and not isinstance(text, str | None):
                self.checks.error(c.at(props, "config"), "a SoftwareConfig's config is text")
                return None
            entry = ConfigEntry(
                str(group), LIFECYCLE_ACTIONS, plain(text) if text is not None else ""
            )
            return Config(str(group), (entry,), inputs, outputs, options, text)
        if res.type == "OS::Heat::SoftwareComponent":
            entries = self.component_configs(props, c, got.get("configs"))
            if entries is None:
                return None
            return Config(COMPONENT_GROUP, entries, inputs, outputs, options, None)
        if res.type == "OS::Heat::CloudConfig":
            return _single(UNGROUPED, cloud_config(got.get("cloud_config") or {}))
        text = self.mime(props, c)
        if text is None:
            return None
        return _single(str(got.get("group") or UNGROUPED), text)

    def component_configs(self, props: YMap, c: Where, got: Any) -> tuple[ConfigEntry, ...] | None:
        """A SoftwareComponent's ``configs``: a tool and a config per set of actions."""
        raw = props.get("configs")
        cc = c.at(props, "configs")
        if not isinstance(raw, YList) or not raw or not isinstance(got, list):
            self.checks.error(cc, "expected a non-empty list of configs")
            return None
        entries: list[ConfigEntry] = []
        claimed: dict[str, int] = {}
        for index, (item, value) in enumerate(zip(raw, got, strict=True)):
            ic = cc.at(raw, index)
            if not isinstance(item, YMap) or not isinstance(value, dict):  # or a function call
                self.checks.error(ic, "expected a config (a mapping)")
                continue
            self.checks.check_keys(item, ic, ("actions", "config", "tool"), ("config", "tool"))
            actions = read_actions(self.checks, item, ic, DEFAULT_DEPLOYMENT_ACTIONS)
            for action in actions:
                if action in claimed:
                    self.checks.error(
                        ic.at(item, "actions"),
                        f"action {action} already has a config (configs[{claimed[action]}])",
                    )
                claimed[action] = index
            tool = value.get("tool")
            if not isinstance(tool, str) or not tool:
                self.checks.error(ic.at(item, "tool"), "expected a tool name")
                continue
            entries.append(ConfigEntry(tool, actions, plain(value.get("config"))))
        return tuple(entries)

    def mime(self, props: YMap, c: Where) -> str | None:
        """A MultipartMime's text; ``None`` when a part has a problem (reported)."""
        raw = props.get("parts") or YList()
        pc = c.at(props, "parts")
        if not isinstance(raw, YList):
            self.checks.error(pc, "expected a list of parts")
            return None
        parts: list[tuple[str, str, str, str]] = []
        for index, item in enumerate(raw):
            ic = pc.at(raw, index)
            if not isinstance(item, YMap):
                self.checks.error(ic, "expected a part (a mapping)")
                return None
            self.checks.check_keys(item, ic, ("config", "type", "subtype", "filename"), ("config",))
            text = self.part_text(item, ic)
            if text is None:
                return None
            kind = item.get("type", "text")
            if kind not in ("text", "multipart"):
                self.checks.error(ic.at(item, "type"), "expected text or multipart")
                return None
            parts.append(
                (text, str(kind), str(item.get("subtype") or ""), str(item.get("filename") or ""))
            )
        return multipart_mime(parts)

    def part_text(self, item: YMap, ic: Where) -> str | None:
        """A part's ``config``: another config's text, or text."""
        ref = item.get("config")
        if isinstance(ref, YMap) and list(ref) == ["get_resource"]:
            target = ref["get_resource"]
            tres = self.scope.resources.get(target) if isinstance(target, str) else None
            if tres is None or tres.type not in CONFIG_TYPES:
                self.checks.error(
                    ic.at(item, "config"), f"get_resource: {target!r} is not a config"
                )
                return None
            sub = self.config(str(target))
            if sub is None or not isinstance(sub.text, str):
                self.checks.error(
                    ic.at(item, "config"), f"config {target!r} has no text to include"
                )
                return None
            return sub.text
        got = self.evaluator.evaluate(ref, ic.at(item, "config"))
        if got is INVALID:
            return None
        if not isinstance(got, str):
            self.checks.error(ic.at(item, "config"), "a part's config is text")
            return None
        return got

    def inputs(self, props: YMap, c: Where) -> tuple[InputDef, ...]:
        """A config's ``inputs``."""
        raw = props.get("inputs")
        if raw is None:
            return ()
        ic = c.at(props, "inputs")
        if not isinstance(raw, YList):
            self.checks.error(ic, "expected a list of inputs")
            return ()
        out: list[InputDef] = []
        for index, item in enumerate(raw):
            found = self.input(item, ic.at(raw, index))
            if found is not None:
                out.append(found)
        return tuple(out)

    def input(self, item: Any, ec: Where) -> InputDef | None:
        if not isinstance(item, YMap):
            self.checks.error(ec, "expected an input (a mapping)")
            return None
        self.checks.check_keys(
            item, ec, ("name", "type", "default", "description", "replace_on_change"), ("name",)
        )
        name = item.get("name")
        type_name = item.get("type", "String")
        if not isinstance(name, str):
            self.checks.error(ec.at(item, "name"), "expected an input name")
            return None
        if type_name not in INPUT_TYPES:
            self.checks.error(
                ec.at(item, "type"),
                f"unknown type {type_name!r} (one of {', '.join(INPUT_TYPES)})",
            )
            return None
        description = item.get("description")
        idef = InputDef(
            name=name,
            type=type_name,
            has_default="default" in item,
            description=description if isinstance(description, str) else "",
            replace_on_change=item.get("replace_on_change") is True,
            as_given="type" not in item,  # Heat passes what such an input is given as it is
        )
        if "default" in item:
            dc = ec.at(item, "default")
            try:
                return replace(
                    idef, default=idef.typed(self.evaluator.evaluate(item["default"], dc))
                )
            except ValueError as exc:
                self.checks.error(dc, str(exc))
        return idef

    def outputs(self, props: YMap, c: Where) -> tuple[OutputDef, ...]:
        """A config's ``outputs``."""
        raw = props.get("outputs")
        if raw is None:
            return ()
        oc = c.at(props, "outputs")
        if not isinstance(raw, YList):
            self.checks.error(oc, "expected a list of outputs")
            return ()
        out: list[OutputDef] = []
        for index, item in enumerate(raw):
            ec = oc.at(raw, index)
            if not isinstance(item, YMap) or not isinstance(item.get("name"), str):
                self.checks.error(ec, "expected an output with a name")
                continue
            self.checks.check_keys(item, ec, ("name", "type", "description", "error_output"))
            description = item.get("description")
            out.append(
                OutputDef(
                    name=item["name"],
                    description=description if isinstance(description, str) else "",
                    error_output=item.get("error_output") is True,
                )
            )
        return tuple(out)
