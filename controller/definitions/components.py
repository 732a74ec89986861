"""``components/<name>/component.yaml``: ``kind: Component``, its inputs,
outputs, configs per lifecycle action and attached files."""

from __future__ import annotations

from typing import Any

from setpoint.controller.definitions.checks import NAME_RE, Checks, Where
from setpoint.controller.definitions.fields import read_actions, read_timeout, read_typed_default
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.model import (
    DEFAULT_TIMEOUT,
    AttachedFile,
    Component,
    ConfigEntry,
    InputDef,
    OutputDef,
)
from setpoint.controller.definitions.values import kind_of, plain
from setpoint.controller.definitions.yamlsource import YList, YMap

COMPONENTS = "components"
COMPONENT_FILE = "component.yaml"
COMPONENT_KEYS = (
    "kind", "name", "description", "inputs", "outputs", "configs", "files", "options", "timeout",
)  # fmt: skip
INPUT_KEYS = (
    "name", "type", "default", "entry_default", "description", "replace_on_change", "secret",
)  # fmt: skip


class ComponentReader:
    """Every component of a commit, checked."""

    def __init__(self, files: CommitFiles) -> None:
        self.files = files
        self.checks: Checks = files.checks

    def components(self) -> dict[str, Component]:
        out: dict[str, Component] = {}
        tree = self.files.tree
        if self.files.kind(COMPONENTS) != "dir":
            return out
        for folder in tree.listdir(COMPONENTS):
            path = f"{COMPONENTS}/{folder}/{COMPONENT_FILE}"
            if self.files.kind(f"{COMPONENTS}/{folder}") != "dir":
                continue
            kind = self.files.kind(path)
            if kind in ("symlink", "submodule"):
                continue  # reported
            if kind != "file":
                self.checks.error(Where(path, 0, ""), "component folder without component.yaml")
                continue
            component = self.component(path, folder)
            if component is None:
                continue
            if component.name in out:
                self.checks.error(
                    Where(path, 1, "name"),
                    f"component {component.name!r} is also defined in {out[component.name].file}",
                )
                continue
            out[component.name] = component
        return out

    def component(self, path: str, folder: str) -> Component | None:
        checks = self.checks
        where = Where(path, 1, "")
        m = checks.mapping(self.files.parse(path), where, "a component")
        if m is None:
            return None
        checks.check_keys(m, where, COMPONENT_KEYS, ("kind", "configs"))
        if "kind" in m and m["kind"] != "Component":
            checks.error(where.at(m, "kind"), f"expected kind: Component, got {m['kind']!r}")
        name = checks.name(m, "name", where, folder, "component")
        inputs = self.inputs(m, where)
        outputs = self.outputs(m, where)
        configs = self.configs(m, where, path)
        files = self.attached(m, where, path)
        options = m.get("options") or {}
        if not isinstance(options, YMap | dict):
            checks.error(where.at(m, "options"), f"expected a mapping, got {kind_of(options)}")
            options = {}
        return Component(
            name=name,
            file=path,
            description=checks.text(m, "description", where),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            configs=tuple(configs),
            files=tuple(files),
            options=plain(options),
            timeout=read_timeout(checks, m, where) or DEFAULT_TIMEOUT,
        )

    def attached(self, m: YMap, where: Where, path: str) -> list[AttachedFile]:
        """``files``: name → ``{get_file: path}`` of a file or a directory."""
        files: list[AttachedFile] = []
        raw_files = m.get("files")
        if raw_files is None or not self.checks.mapping(raw_files, where.at(m, "files"), "files"):
            return files
        for fname, ref in raw_files.items():
            fwhere = where.at(m, "files").at(raw_files, fname)
            if not isinstance(fname, str) or not NAME_RE.match(fname):
                self.checks.error(fwhere, f"invalid file name {fname!r}")
                continue
            if not (isinstance(ref, YMap) and list(ref) == ["get_file"]):
                self.checks.error(fwhere, "expected {get_file: path}")
                continue
            attached = self.files.attach(path, fname, ref["get_file"], fwhere.at(ref, "get_file"))
            if attached:
                files.append(attached)
        return files

    def inputs(self, m: YMap, where: Where) -> list[InputDef]:
        checks = self.checks
        out: list[InputDef] = []
        for _, im, c in checks.mapping_items(m, "inputs", where, "an input"):
            checks.check_keys(im, c, INPUT_KEYS, ("name",))
            name = checks.name(im, "name", c, "", "input")
            if name in {i.name for i in out}:
                checks.error(c.at(im, "name"), f"input {name!r} declared twice")
                continue
            typed = read_typed_default(checks, im, c)
            if typed is None:
                continue
            type_name, default, has_default = typed
            if "entry_default" in im and type_name != "Json":
                checks.error(
                    c.at(im, "entry_default"),
                    f"entry_default: only a Json input holds a map of members "
                    f"(type is {type_name})",
                )
            out.append(
                InputDef(
                    name=name,
                    type=type_name,
                    default=default,
                    has_default=has_default,
                    entry_default=plain(im.get("entry_default")),
                    has_entry_default="entry_default" in im,
                    description=checks.text(im, "description", c),
                    replace_on_change=checks.boolean(im, "replace_on_change", c),
                    secret=checks.boolean(im, "secret", c),
                )
            )
        return out

    def outputs(self, m: YMap, where: Where) -> list[OutputDef]:
        checks = self.checks
        out: list[OutputDef] = []
        for _, om, c in checks.mapping_items(m, "outputs", where, "an output"):
            checks.check_keys(om, c, ("name", "description", "error_output"), ("name",))
            name = checks.name(om, "name", c, "", "output")
            if name in {o.name for o in out}:
                checks.error(c.at(om, "name"), f"output {name!r} declared twice")
                continue
            out.append(
                OutputDef(
                    name=name,
                    description=checks.text(om, "description", c),
                    error_output=checks.boolean(om, "error_output", c),
                )
            )
        return out

    def configs(self, m: YMap, where: Where, path: str) -> list[ConfigEntry]:
        checks = self.checks
        out: list[ConfigEntry] = []
        claimed: dict[str, int] = {}
        for index, em, c in checks.mapping_items(m, "configs", where, "a config", non_empty=True):
            checks.check_keys(em, c, ("tool", "actions", "config"), ("tool", "actions", "config"))
            tool = checks.name(em, "tool", c, "script", "tool")
            actions = read_actions(checks, em, c, None, custom=True)
            for action in actions:
                if action in claimed:
                    checks.error(
                        c.at(em, "actions"),
                        f"action {action} already has a config (configs[{claimed[action]}])",
                    )
                else:
                    claimed[action] = index
            config = self.config_body(em, c, path)
            if config is not None:
                out.append(ConfigEntry(tool=tool, actions=actions, config=config))
        return out

    def config_body(self, em: YMap, c: Where, path: str) -> Any:
        """A config's ``config``: text, ``{get_file: path}`` or structured data."""
        config: Any = em.get("config")
        if isinstance(config, YMap) and list(config) == ["get_file"]:
            return self.files.read_text(path, config["get_file"], c.at(em, "config"))
        if isinstance(config, YMap | YList):
            return plain(config)  # structured config for tools that take data
        if not isinstance(config, str):
            self.checks.error(
                c.at(em, "config"),
                f"expected text or {{get_file: path}}, got {kind_of(config)}",
            )
            return None
        return config
