"""Load and check a commit's definitions into a ``Model``.

Layout of a definitions repository (read from the commit, never the working
directory):

- ``inventory.yaml``: ``servers`` (name → labels) and ``groups`` (name → servers)
- ``components/<name>/component.yaml``: ``kind: Component``
- ``stacks/<name>.yaml``: ``kind: Stack``
- ``environments/<name>.yaml``: ``kind: Environment``, read only when an
  environment is asked for: parameter values for the stacks and, optionally,
  the environment's own inventory in place of ``inventory.yaml``

Every problem found is collected with its file, line and field; if there is
any, ``InvalidDefinitions`` carries all of them and nothing may be published.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from setpoint.controller.definitions.model import (
    DEFAULT_DEPLOYMENT_ACTIONS,
    DEFAULT_TIMEOUT,
    INPUT_TYPES,
    ON_FAILURE,
    STATES,
    UPDATE_ORDERS,
    AttachedFile,
    Component,
    ConfigEntry,
    Deployment,
    GetAttr,
    InputDef,
    Inventory,
    Model,
    OutputDef,
    ParamDef,
    RunRequest,
    Stack,
    UpdatePolicy,
)
from setpoint.controller.definitions.repository import GitError
from setpoint.controller.definitions.values import coerce, plain
from setpoint.controller.definitions.yamlsource import YList, YMap, load_yaml
from setpoint.controller.errors import InvalidDefinitions, Problem
from setpoint.controller.rollout.contextualize import declared_cycles
from setpoint.store.bundles import make_zip, tree_digest
from setpoint.store.digest import digest_bytes
from setpoint.store.documents import LIFECYCLE_ACTIONS, is_server_name

INVENTORY = "inventory.yaml"
COMPONENTS = "components"
STACKS = "stacks"
ENVIRONMENTS = "environments"
COMPONENT_FILE = "component.yaml"

COMPONENT_KEYS = (
    "kind", "name", "description", "inputs", "outputs", "configs", "files", "options", "timeout",
)  # fmt: skip
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# A component's named extra action (run with ``run: {action: BACKUP, token: ...}``).
_CUSTOM_ACTION_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
ROLLOUT_KEYS = (
    "update_policy", "batch_create", "update_order", "on_failure", "state", "run", "converge",
)  # fmt: skip
_INTRINSICS = ("get_param", "get_file", "get_attr")


# Parsed documents by (git object id, path), shared by every load in the process:
# a commit that changes one file parses that file only. Documents are never
# modified after parsing. Oldest entries leave first.
_PARSED: dict[tuple[str, str], tuple[Any, tuple[Problem, ...]]] = {}
_PARSED_MAX = 1024


class Tree(Protocol):
    """What the loader needs of a commit (``controller.gitrepo.CommitTree``)."""

    commit: str

    def read(self, path: str) -> bytes: ...
    def kind(self, path: str) -> str | None: ...
    def listdir(self, path: str) -> list[str]: ...
    def walk(self, path: str) -> list[tuple[str, int, bytes]]: ...
    def mode(self, path: str) -> int: ...


@dataclass
class _Ctx:
    """Where a value sits, for messages: file, line and dotted field path."""

    file: str
    line: int
    field: str

    def at(self, container: Any, key: Any) -> _Ctx:
        line = self.line
        if isinstance(container, YMap) and key in container.key_lines:
            line = container.key_lines[key]
        elif isinstance(container, YList) and isinstance(key, int):
            line = container.line_of(key)
        sub = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.field else str(key))
        return _Ctx(self.file, line, self.field + sub)


@dataclass
class _Loader:
    tree: Tree
    problems: list[Problem] = field(default_factory=list)
    # References between deployments are checked once every stack is loaded.
    _pending_refs: list[tuple[str, str, list[tuple[str, _Ctx]]]] = field(default_factory=list)
    _pending_attrs: list[tuple[GetAttr, _Ctx]] = field(default_factory=list)
    # Declared contextualization cycles, found while ordering.
    cycles: list[tuple[str, ...]] = field(default_factory=list)
    # The selected environment's parameter values (raw, with where they were
    # written) and which of them some stack declares.
    env_params: dict[str, tuple[Any, _Ctx]] = field(default_factory=dict)
    env_params_used: set[str] = field(default_factory=set)

    # -- reading ---------------------------------------------------------------------

    def parse(self, path: str) -> Any:
        """The YAML document at ``path``, parsed once per git object id (and path)."""
        blob_id = getattr(self.tree, "blob_id", None)
        if blob_id is None:
            return load_yaml(self.tree.read(path), path, self.problems)
        key = (blob_id(path), path)
        hit = _PARSED.get(key)
        if hit is None:
            problems: list[Problem] = []
            doc = load_yaml(self.tree.read(path), path, problems)
            hit = (doc, tuple(problems))
            if len(_PARSED) >= _PARSED_MAX:
                del _PARSED[next(iter(_PARSED))]
            _PARSED[key] = hit
        self.problems += hit[1]
        return hit[0]

    # -- reporting helpers ---------------------------------------------------------

    def error(self, ctx: _Ctx, message: str) -> None:
        self.problems.append(Problem(ctx.file, ctx.line, ctx.field, message))

    def mapping(self, value: Any, ctx: _Ctx, what: str) -> YMap | None:
        if isinstance(value, YMap):
            return value
        self.error(ctx, f"expected {what} (a mapping), got {_kind(value)}")
        return None

    def check_keys(
        self, m: YMap, ctx: _Ctx, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> None:
        for key in m:
            if key not in allowed:
                hint = _did_you_mean(str(key), allowed)
                self.error(
                    ctx.at(m, key),
                    f"unknown key {key!r}{hint} (allowed: {', '.join(allowed)})",
                )
        for key in required:
            if key not in m:
                self.error(ctx, f"missing required key {key!r}")

    def text(self, m: YMap, key: str, ctx: _Ctx, default: str = "") -> str:
        value = m.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            self.error(ctx.at(m, key), f"expected a string, got {_kind(value)}")
            return default
        return value

    def name(self, m: YMap, key: str, ctx: _Ctx, default: str, what: str) -> str:
        value = self.text(m, key, ctx, default)
        if not _NAME_RE.match(value):
            self.error(
                ctx.at(m, key),
                f"invalid {what} name {value!r} (letters, digits, '_', '.', '-')",
            )
        return value

    def boolean(self, m: YMap, key: str, ctx: _Ctx) -> bool:
        value = m.get(key, False)
        if not isinstance(value, bool):
            self.error(ctx.at(m, key), f"expected true or false, got {_kind(value)}")
            return False
        return value

    def timeout(self, m: YMap, ctx: _Ctx) -> float | None:
        if "timeout" not in m:
            return None
        value = m["timeout"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.error(
                ctx.at(m, "timeout"), f"expected a positive number of seconds, got {value!r}"
            )
            return None
        return float(value)

    def list_of_text(self, m: YMap, key: str, ctx: _Ctx) -> list[tuple[str, _Ctx]]:
        value = m.get(key)
        if value is None:
            return []
        if not isinstance(value, YList):
            self.error(ctx.at(m, key), f"expected a list, got {_kind(value)}")
            return []
        out = []
        for index, item in enumerate(value):
            item_ctx = ctx.at(m, key).at(value, index)
            if not isinstance(item, str):
                self.error(item_ctx, f"expected a string, got {_kind(item)}")
                continue
            out.append((item, item_ctx))
        return out

    def actions(
        self, m: YMap, ctx: _Ctx, default: tuple[str, ...] | None, custom: bool = False
    ) -> tuple[str, ...]:
        """Lifecycle actions; with ``custom``, also named extra actions (``BACKUP``)."""
        if "actions" not in m and default is not None:
            return default
        seen: list[str] = []
        for action, action_ctx in self.list_of_text(m, "actions", ctx):
            if custom and action not in LIFECYCLE_ACTIONS and _CUSTOM_ACTION_RE.match(action):
                if action in seen:
                    self.error(action_ctx, f"action {action} listed twice")
                else:
                    seen.append(action)
            elif action not in LIFECYCLE_ACTIONS:
                self.error(
                    action_ctx,
                    f"unknown action {action!r} (one of {', '.join(LIFECYCLE_ACTIONS)})",
                )
            elif action in seen:
                self.error(action_ctx, f"action {action} listed twice")
            else:
                seen.append(action)
        if not seen and "actions" in m:
            self.error(ctx.at(m, "actions"), "expected at least one action")
        return tuple(seen)

    # -- files -------------------------------------------------------------------------

    def resolve_path(self, base_file: str, path: Any, ctx: _Ctx) -> str | None:
        if not isinstance(path, str) or not path:
            self.error(ctx, f"get_file takes a relative path, got {_kind(path)}")
            return None
        if path.startswith("/"):
            self.error(ctx, f"get_file path {path!r} must be relative to {base_file}")
            return None
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(base_file), path))
        if joined == ".." or joined.startswith("../"):
            self.error(ctx, f"get_file path {path!r} escapes the repository")
            return None
        return joined

    def read_text(self, base_file: str, path: Any, ctx: _Ctx) -> str | None:
        resolved = self.resolve_path(base_file, path, ctx)
        if resolved is None:
            return None
        if self.tree.kind(resolved) != "file":
            self.error(ctx, f"get_file: no file {resolved!r} in the commit")
            return None
        try:
            return self.tree.read(resolved).decode("utf-8")
        except UnicodeDecodeError:
            self.error(ctx, f"get_file: {resolved!r} is not UTF-8 text (attach it under files:)")
            return None

    def attach(self, base_file: str, name: str, path: Any, ctx: _Ctx) -> AttachedFile | None:
        resolved = self.resolve_path(base_file, path, ctx)
        if resolved is None:
            return None
        kind = self.tree.kind(resolved)
        want_dir = isinstance(path, str) and path.endswith("/")
        if kind == "file" and not want_dir:
            content = self.tree.read(resolved)
            mode = self.tree.mode(resolved)
            return AttachedFile(
                name=name,
                path=resolved,
                kind="file",
                digest=digest_bytes(content),
                content=content,
                executable=bool(mode & 0o111),
            )
        if kind == "dir":
            try:
                files = self.tree.walk(resolved)
            except GitError as exc:  # a symlink or submodule inside the bundle
                self.error(ctx, f"get_file: cannot bundle {resolved!r}: {exc}")
                return None
            if not files:
                self.error(ctx, f"get_file: directory {resolved!r} is empty")
                return None
            zipped = make_zip(files)
            return AttachedFile(
                name=name,
                path=resolved + "/",
                kind="directory",
                digest=tree_digest((p, m, digest_bytes(c)) for p, m, c in files),
                content=zipped,
                zip_digest=digest_bytes(zipped),
            )
        what = "a directory" if want_dir else "a file or directory"
        self.error(ctx, f"get_file: {resolved!r} is not {what} in the commit (found: {kind})")
        return None

    # -- inventory -----------------------------------------------------------------

    def inventory(self) -> Inventory:
        ctx = _Ctx(INVENTORY, 1, "")
        if self.tree.kind(INVENTORY) != "file":
            self.error(ctx, "missing inventory.yaml at the repository root")
            return Inventory({}, {})
        doc = self.parse(INVENTORY)
        m = self.mapping(doc, ctx, "the inventory") if doc is not None else YMap()
        if m is None:
            return Inventory({}, {})
        self.check_keys(m, ctx, ("kind", "servers", "groups"))
        if "kind" in m and m["kind"] != "Inventory":
            self.error(ctx.at(m, "kind"), f"expected kind: Inventory, got {m['kind']!r}")
        return self.inventory_body(m, ctx)

    def inventory_body(self, m: YMap, ctx: _Ctx) -> Inventory:
        """``servers`` and ``groups`` of an inventory (its own file or an environment's)."""
        servers: dict[str, dict[str, Any]] = {}
        raw_servers = m.get("servers") or YMap()
        if self.mapping(raw_servers, ctx.at(m, "servers"), "servers") is not None:
            for name, labels in raw_servers.items():
                sctx = ctx.at(m, "servers").at(raw_servers, name)
                if not is_server_name(name):
                    self.error(sctx, f"invalid server name {name!r}")
                    continue
                if labels is not None and not isinstance(labels, YMap):
                    self.error(sctx, f"expected labels (a mapping), got {_kind(labels)}")
                    continue
                servers[name] = plain(labels) if labels else {}
        groups: dict[str, tuple[str, ...]] = {}
        raw_groups = m.get("groups") or YMap()
        if self.mapping(raw_groups, ctx.at(m, "groups"), "groups") is not None:
            for gname, members in raw_groups.items():
                gctx = ctx.at(m, "groups").at(raw_groups, gname)
                if not isinstance(members, YList):
                    self.error(gctx, f"expected a list of server names, got {_kind(members)}")
                    continue
                names = []
                for index, member in enumerate(members):
                    mctx = gctx.at(members, index)
                    if member not in servers:
                        self.error(mctx, f"unknown server {member!r} in group {gname!r}")
                    elif member in names:
                        self.error(mctx, f"server {member!r} listed twice")
                    else:
                        names.append(member)
                groups[str(gname)] = tuple(names)
        return Inventory(servers, groups)

    # -- components ---------------------------------------------------------------------

    def components(self) -> dict[str, Component]:
        out: dict[str, Component] = {}
        if self.tree.kind(COMPONENTS) != "dir":
            return out
        for folder in self.tree.listdir(COMPONENTS):
            path = f"{COMPONENTS}/{folder}/{COMPONENT_FILE}"
            if self.tree.kind(f"{COMPONENTS}/{folder}") != "dir":
                continue
            if self.tree.kind(path) != "file":
                self.error(_Ctx(path, 0, ""), "component folder without component.yaml")
                continue
            component = self.component(path, folder)
            if component is None:
                continue
            if component.name in out:
                self.error(
                    _Ctx(path, 1, "name"),
                    f"component {component.name!r} is also defined in {out[component.name].file}",
                )
                continue
            out[component.name] = component
        return out

    def component(self, path: str, folder: str) -> Component | None:
        ctx = _Ctx(path, 1, "")
        doc = self.parse(path)
        m = self.mapping(doc, ctx, "a component")
        if m is None:
            return None
        self.check_keys(
            m,
            ctx,
            COMPONENT_KEYS,
            ("kind", "configs"),
        )
        if "kind" in m and m["kind"] != "Component":
            self.error(ctx.at(m, "kind"), f"expected kind: Component, got {m['kind']!r}")
        name = self.name(m, "name", ctx, folder, "component")
        inputs = self.inputs(m, ctx, path)
        outputs = self.outputs(m, ctx)
        configs = self.configs(m, ctx, path)
        files: list[AttachedFile] = []
        raw_files = m.get("files")
        if raw_files is not None and self.mapping(raw_files, ctx.at(m, "files"), "files"):
            for fname, ref in raw_files.items():
                fctx = ctx.at(m, "files").at(raw_files, fname)
                if not isinstance(fname, str) or not _NAME_RE.match(fname):
                    self.error(fctx, f"invalid file name {fname!r}")
                    continue
                if not (isinstance(ref, YMap) and list(ref) == ["get_file"]):
                    self.error(fctx, "expected {get_file: path}")
                    continue
                attached = self.attach(path, fname, ref["get_file"], fctx.at(ref, "get_file"))
                if attached:
                    files.append(attached)
        options = m.get("options") or {}
        if not isinstance(options, YMap | dict):
            self.error(ctx.at(m, "options"), f"expected a mapping, got {_kind(options)}")
            options = {}
        return Component(
            name=name,
            file=path,
            description=self.text(m, "description", ctx),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            configs=tuple(configs),
            files=tuple(files),
            options=plain(options),
            timeout=self.timeout(m, ctx) or DEFAULT_TIMEOUT,
        )

    def mapping_items(
        self, m: YMap, key: str, ctx: _Ctx, what: str, non_empty: bool = False
    ) -> Iterator[tuple[int, YMap, _Ctx]]:
        """Each mapping of the list under ``key``: its index, itself and where it is.

        A missing key is an empty list; a non-list or a non-mapping item is reported.
        """
        raw = m.get(key)
        if raw is None:
            return
        lctx = ctx.at(m, key)
        if not isinstance(raw, YList) or (non_empty and not raw):
            self.error(
                lctx,
                f"expected a {'non-empty ' if non_empty else ''}list of {key}, got {_kind(raw)}",
            )
            return
        for index, item in enumerate(raw):
            c = lctx.at(raw, index)
            found = self.mapping(item, c, what)
            if found is not None:
                yield index, found, c

    def typed_default(self, m: YMap, ctx: _Ctx) -> tuple[str, Any, bool] | None:
        """(type, default, has_default) of an input or parameter; None if the type is unknown."""
        type_name = self.text(m, "type", ctx, "String")
        if type_name not in INPUT_TYPES:
            self.error(
                ctx.at(m, "type"),
                f"unknown type {type_name!r} (one of {', '.join(INPUT_TYPES)})",
            )
            return None
        if "default" not in m:
            return type_name, None, False
        return type_name, self.literal(type_name, m["default"], ctx.at(m, "default")), True

    def inputs(self, m: YMap, ctx: _Ctx, path: str) -> list[InputDef]:
        out: list[InputDef] = []
        for _, im, c in self.mapping_items(m, "inputs", ctx, "an input"):
            self.check_keys(
                im,
                c,
                ("name", "type", "default", "description", "replace_on_change", "secret"),
                ("name",),
            )
            name = self.name(im, "name", c, "", "input")
            if name in {i.name for i in out}:
                self.error(c.at(im, "name"), f"input {name!r} declared twice")
                continue
            typed = self.typed_default(im, c)
            if typed is None:
                continue
            type_name, default, has_default = typed
            out.append(
                InputDef(
                    name=name,
                    type=type_name,
                    default=default,
                    has_default=has_default,
                    description=self.text(im, "description", c),
                    replace_on_change=self.boolean(im, "replace_on_change", c),
                    secret=self.boolean(im, "secret", c),
                )
            )
        return out

    def outputs(self, m: YMap, ctx: _Ctx) -> list[OutputDef]:
        out: list[OutputDef] = []
        for _, om, c in self.mapping_items(m, "outputs", ctx, "an output"):
            self.check_keys(om, c, ("name", "description", "error_output"), ("name",))
            name = self.name(om, "name", c, "", "output")
            if name in {o.name for o in out}:
                self.error(c.at(om, "name"), f"output {name!r} declared twice")
                continue
            out.append(
                OutputDef(
                    name=name,
                    description=self.text(om, "description", c),
                    error_output=self.boolean(om, "error_output", c),
                )
            )
        return out

    def configs(self, m: YMap, ctx: _Ctx, path: str) -> list[ConfigEntry]:
        out: list[ConfigEntry] = []
        claimed: dict[str, int] = {}
        for index, em, c in self.mapping_items(m, "configs", ctx, "a config", non_empty=True):
            self.check_keys(em, c, ("tool", "actions", "config"), ("tool", "actions", "config"))
            tool = self.name(em, "tool", c, "script", "tool")
            actions = self.actions(em, c, None, custom=True)
            for action in actions:
                if action in claimed:
                    self.error(
                        c.at(em, "actions"),
                        f"action {action} already has a config (configs[{claimed[action]}])",
                    )
                else:
                    claimed[action] = index
            config: Any = em.get("config")
            if isinstance(config, YMap) and list(config) == ["get_file"]:
                config = self.read_text(path, config["get_file"], c.at(em, "config"))
            elif isinstance(config, YMap | YList):
                config = plain(config)  # structured config for tools that take data
            elif not isinstance(config, str):
                self.error(
                    c.at(em, "config"),
                    f"expected text or {{get_file: path}}, got {_kind(config)}",
                )
                config = None
            if config is not None:
                out.append(ConfigEntry(tool=tool, actions=actions, config=config))
        return out

    def literal(self, type_name: str, value: Any, ctx: _Ctx) -> Any:
        try:
            return coerce(type_name, value)
        except ValueError as exc:
            self.error(ctx, str(exc))
            return None

    # -- stacks ----------------------------------------------------------------------------

    def stacks(self, components: dict[str, Component], inventory: Inventory) -> dict[str, Stack]:
        out: dict[str, Stack] = {}
        if self.tree.kind(STACKS) != "dir":
            return out
        from setpoint.controller.definitions.heat.template import (
            is_environment_file,
            is_heat_template,
            load_template,
        )

        for fname in self.tree.listdir(STACKS):
            if not fname.endswith((".yaml", ".yml")) or is_environment_file(fname):
                continue  # a Heat environment file is read with its template
            path = f"{STACKS}/{fname}"
            if self.tree.kind(path) != "file":
                continue
            stem = fname.rsplit(".", 1)[0]
            if is_heat_template(self.tree.read(path)):
                stack = load_template(self, path, stem, components, inventory)
            else:
                stack = self.stack(path, stem, components, inventory)
            if stack is None:
                continue
            if stack.name in out:
                self.error(
                    _Ctx(path, 1, "name"),
                    f"stack {stack.name!r} is also defined in {out[stack.name].file}",
                )
                continue
            out[stack.name] = stack
        return out

    def stack(
        self, path: str, stem: str, components: dict[str, Component], inventory: Inventory
    ) -> Stack | None:
        ctx = _Ctx(path, 1, "")
        doc = self.parse(path)
        m = self.mapping(doc, ctx, "a stack")
        if m is None:
            return None
        self.check_keys(
            m,
            ctx,
            ("kind", "name", "description", "parameters", "deployments", "on_failure", "state"),
            ("kind",),
        )
        self._stack_defaults = {
            "on_failure": self.choice(m, "on_failure", ctx, ON_FAILURE, "halt"),
            "state": self.choice(m, "state", ctx, STATES, "active"),
        }
        if "kind" in m and m["kind"] != "Stack":
            self.error(ctx.at(m, "kind"), f"expected kind: Stack, got {m['kind']!r}")
        name = self.name(m, "name", ctx, stem, "stack")
        params = self.with_environment(self.parameters(m, ctx))
        deployments: dict[str, Deployment] = {}
        raw = m.get("deployments") or YMap()
        dctx = ctx.at(m, "deployments")
        if self.mapping(raw, dctx, "deployments") is not None:
            for dname, body in raw.items():
                c = dctx.at(raw, dname)
                if not isinstance(dname, str) or not _NAME_RE.match(dname):
                    self.error(c, f"invalid deployment name {dname!r}")
                    continue
                dep = self.deployment(name, dname, body, c, params, components, inventory)
                if dep is not None:
                    deployments[dname] = dep
        return Stack(
            name=name,
            file=path,
            description=self.text(m, "description", ctx),
            parameters=params,
            deployments=deployments,
        )

    def parameters(self, m: YMap, ctx: _Ctx) -> dict[str, ParamDef]:
        out: dict[str, ParamDef] = {}
        raw = m.get("parameters")
        if raw is None:
            return out
        pctx = ctx.at(m, "parameters")
        if self.mapping(raw, pctx, "parameters") is None:
            return out
        for pname, body in raw.items():
            c = pctx.at(raw, pname)
            pm = self.mapping(body, c, "a parameter")
            if pm is None:
                continue
            self.check_keys(pm, c, ("type", "default", "description"))
            typed = self.typed_default(pm, c)
            if typed is None:
                continue
            type_name, default, has_default = typed
            out[str(pname)] = ParamDef(
                name=str(pname),
                type=type_name,
                default=default,
                has_default=has_default,
                description=self.text(pm, "description", c),
            )
        return out

    # -- environments ----------------------------------------------------------------------

    def environment(self, env: str) -> Inventory | None:
        """Read ``environments/<env>.yaml``: keep its parameter values, return its inventory.

        ``None`` when the environment has no ``inventory`` (``inventory.yaml`` applies).
        """
        # The name is checked before it is used in a path: "../x" names no environment.
        path = None
        if _NAME_RE.match(env):
            path = next(
                (
                    f"{ENVIRONMENTS}/{env}{ext}"
                    for ext in (".yaml", ".yml")
                    if self.tree.kind(f"{ENVIRONMENTS}/{env}{ext}") == "file"
                ),
                None,
            )
        if path is None:
            known = ", ".join(environment_names(self.tree)) or "none"
            self.error(
                _Ctx(f"{ENVIRONMENTS}/{env}.yaml", 0, ""),
                f"no environment {env!r} in the commit (environments: {known})",
            )
            return None
        ctx = _Ctx(path, 1, "")
        doc = self.parse(path)
        m = self.mapping(doc, ctx, "an environment") if doc is not None else YMap()
        if m is None:
            return None
        self.check_keys(m, ctx, ("kind", "description", "parameters", "inventory"), ("kind",))
        if "kind" in m and m["kind"] != "Environment":
            self.error(ctx.at(m, "kind"), f"expected kind: Environment, got {m['kind']!r}")
        raw = m.get("parameters")
        pctx = ctx.at(m, "parameters")
        if raw is not None and self.mapping(raw, pctx, "parameters") is not None:
            for pname, value in raw.items():
                self.env_params[str(pname)] = (value, pctx.at(raw, pname))
        if "inventory" not in m:
            return None
        ictx = ctx.at(m, "inventory")
        inv = self.mapping(m["inventory"], ictx, "an inventory")
        if inv is None:
            return Inventory({}, {})
        self.check_keys(inv, ictx, ("servers", "groups"))
        return self.inventory_body(inv, ictx)

    def with_environment(self, params: dict[str, ParamDef]) -> dict[str, ParamDef]:
        """A stack's parameters with the environment's values as their values.

        As Heat's ``parameter_defaults``: a value applies to every stack that
        declares a parameter of that name, and is checked against each one's type.
        """
        out = dict(params)
        for pname, param in params.items():
            if pname not in self.env_params:
                continue
            raw, ctx = self.env_params[pname]
            self.env_params_used.add(pname)
            value = self.literal(param.type, raw, ctx)
            out[pname] = ParamDef(
                name=pname,
                type=param.type,
                default=value,
                has_default=True,
                description=param.description,
            )
        return out

    def check_environment_params(self, stacks: dict[str, Stack]) -> None:
        declared = tuple(sorted({p for s in stacks.values() for p in s.parameters}))
        for pname, (_raw, ctx) in self.env_params.items():
            if pname not in self.env_params_used:
                hint = _did_you_mean(pname, declared)
                self.error(ctx, f"no stack declares a parameter {pname!r}{hint}")

    def deployment(
        self,
        stack: str,
        name: str,
        body: Any,
        ctx: _Ctx,
        params: dict[str, ParamDef],
        components: dict[str, Component],
        inventory: Inventory,
    ) -> Deployment | None:
        dm = self.mapping(body, ctx, "a deployment")
        if dm is None:
            return None
        self.check_keys(
            dm,
            ctx,
            (
                "component",
                "servers",
                "actions",
                "input_values",
                "depends_on",
                "timeout",
                *ROLLOUT_KEYS,
            ),
            ("component", "servers"),
        )
        component_name = self.text(dm, "component", ctx)
        component = components.get(component_name)
        if component is None and "component" in dm:
            hint = _did_you_mean(component_name, tuple(components))
            self.error(ctx.at(dm, "component"), f"unknown component {component_name!r}{hint}")
        servers, group = self.servers(dm, ctx, inventory)
        actions = self.actions(dm, ctx, DEFAULT_DEPLOYMENT_ACTIONS)
        values: dict[str, Any] = {}
        raw_values = dm.get("input_values")
        vctx = ctx.at(dm, "input_values")
        if raw_values is not None and self.mapping(raw_values, vctx, "input_values") is not None:
            for iname, raw in raw_values.items():
                c = vctx.at(raw_values, iname)
                resolved = self.intrinsics(raw, c, stack, params)
                if component is None:
                    continue
                idef = component.input(str(iname))
                if idef is None:
                    hint = _did_you_mean(str(iname), tuple(i.name for i in component.inputs))
                    self.error(c, f"component {component.name!r} has no input {iname!r}{hint}")
                    continue
                if resolved is _INVALID:
                    continue
                if not _has_attr(resolved):
                    resolved = self.literal(idef.type, resolved, c)
                values[str(iname)] = resolved
        if component is not None:
            for idef in component.inputs:
                if (
                    idef.name not in values
                    and not idef.has_default
                    and idef.name not in (raw_values or {})
                ):
                    self.error(
                        ctx,
                        f"input {idef.name!r} of component {component.name!r} needs a value "
                        "(it has no default)",
                    )
        depends = [
            (_qualify(stack, dep), dctx) for dep, dctx in self.list_of_text(dm, "depends_on", ctx)
        ]
        self._pending_refs.append((stack, name, depends))
        return Deployment(
            stack=stack,
            name=name,
            component=component_name,
            servers=servers,
            group=group,
            actions=actions,
            input_values=values,
            depends_on=tuple(d for d, _ in depends),
            timeout=self.timeout(dm, ctx),
            file=ctx.file,
            line=ctx.line,
            **self.rollout_keys(dm, ctx, component),
        )

    # -- rollout and lifecycle keys of a deployment (issue 4) -------------------------

    def choice(self, m: YMap, key: str, ctx: _Ctx, allowed: tuple[str, ...], default: str) -> str:
        if key not in m:
            return default
        value = m[key]
        if value not in allowed:
            self.error(ctx.at(m, key), f"expected one of {', '.join(allowed)}, got {_kind(value)}")
            return default
        return str(value)

    def count(self, m: YMap, key: str, ctx: _Ctx, minimum: int) -> int | None:
        if key not in m:
            return None
        value = m[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(ctx.at(m, key), f"expected a whole number >= {minimum}, got {_kind(value)}")
            return None
        return value

    def update_policy(self, dm: YMap, key: str, ctx: _Ctx, servers: int) -> UpdatePolicy | None:
        if key not in dm:
            return None
        c = ctx.at(dm, key)
        pm = self.mapping(dm[key], c, key)
        if pm is None:
            return None
        self.check_keys(pm, c, ("max_batch_size", "min_in_service", "pause_time", "canary"))
        pause = pm.get("pause_time", 0)
        if isinstance(pause, bool) or not isinstance(pause, int | float) or pause < 0:
            self.error(c.at(pm, "pause_time"), f"expected seconds >= 0, got {_kind(pause)}")
            pause = 0
        policy = UpdatePolicy(
            max_batch_size=self.count(pm, "max_batch_size", c, 1),
            min_in_service=self.count(pm, "min_in_service", c, 0) or 0,
            pause_time=float(pause),
            canary=self.count(pm, "canary", c, 0) or 0,
        )
        if servers and policy.min_in_service >= servers:
            self.error(
                c.at(pm, "min_in_service"),
                f"min_in_service {policy.min_in_service} leaves no server to update "
                f"(the deployment has {servers})",
            )
        return policy

    def rollout_keys(self, dm: YMap, ctx: _Ctx, component: Component | None) -> dict[str, Any]:
        """``update_policy``, ``batch_create``, ``update_order``, ``on_failure``,
        ``state``, ``run`` and ``converge`` of a deployment."""
        defaults = getattr(self, "_stack_defaults", {})
        servers = dm.get("servers")
        count = len(servers) if isinstance(servers, YList) else 0
        run: RunRequest | None = None
        if "run" in dm:
            c = ctx.at(dm, "run")
            rm = self.mapping(dm["run"], c, "run")
            if rm is not None:
                self.check_keys(rm, c, ("action", "token"), ("action", "token"))
                action = self.text(rm, "action", c)
                token = rm.get("token")
                if isinstance(token, bool) or not isinstance(token, str | int | float):
                    self.error(c.at(rm, "token"), f"expected a string, got {_kind(token)}")
                elif action and component is not None:
                    custom = {a for e in component.configs for a in e.actions}
                    custom -= set(LIFECYCLE_ACTIONS)
                    if action not in custom:
                        known = ", ".join(sorted(custom)) or "none"
                        self.error(
                            c.at(rm, "action"),
                            f"component {component.name!r} has no custom action {action!r} "
                            f"(custom actions: {known})",
                        )
                    else:
                        run = RunRequest(action, str(token))
        return {
            "update_policy": self.update_policy(dm, "update_policy", ctx, count),
            "batch_create": self.update_policy(dm, "batch_create", ctx, 0),
            "update_order": self.choice(dm, "update_order", ctx, UPDATE_ORDERS, "parallel"),
            "on_failure": self.choice(
                dm, "on_failure", ctx, ON_FAILURE, defaults.get("on_failure", "halt")
            ),
            "state": self.choice(dm, "state", ctx, STATES, defaults.get("state", "active")),
            "run": run,
            "converge": self.boolean(dm, "converge", ctx),
        }

    def servers(
        self, dm: YMap, ctx: _Ctx, inventory: Inventory
    ) -> tuple[tuple[str, ...], str | None]:
        raw = dm.get("servers")
        sctx = ctx.at(dm, "servers")
        if raw is None:
            return (), None
        if isinstance(raw, YMap):
            self.check_keys(raw, sctx, ("group",), ("group",))
            group = raw.get("group")
            if not isinstance(group, str):
                return (), None
            if group not in inventory.groups:
                hint = _did_you_mean(group, tuple(inventory.groups))
                self.error(sctx.at(raw, "group"), f"unknown group {group!r}{hint}")
                return (), group
            if not inventory.groups[group]:
                self.error(sctx.at(raw, "group"), f"group {group!r} has no servers")
            return inventory.groups[group], group
        if isinstance(raw, YList):
            names: list[str] = []
            for index, item in enumerate(raw):
                c = sctx.at(raw, index)
                if item not in inventory.servers:
                    hint = _did_you_mean(str(item), tuple(inventory.servers))
                    self.error(c, f"unknown server {item!r}{hint}")
                elif item in names:
                    self.error(c, f"server {item!r} listed twice")
                else:
                    names.append(item)
            if not raw:
                self.error(sctx, "expected at least one server")
            return tuple(names), None
        self.error(sctx, f"expected a list of servers or {{group: NAME}}, got {_kind(raw)}")
        return (), None

    def intrinsics(self, value: Any, ctx: _Ctx, stack: str, params: dict[str, ParamDef]) -> Any:
        """Resolve get_param and get_file now; turn get_attr into ``GetAttr``."""
        if isinstance(value, YMap) and len(value) == 1 and next(iter(value)) in _INTRINSICS:
            fn = next(iter(value))
            arg = value[fn]
            c = ctx.at(value, fn)
            if fn == "get_param":
                if not isinstance(arg, str):
                    self.error(c, "get_param takes a parameter name")
                    return _INVALID
                param = params.get(arg)
                if param is None:
                    hint = _did_you_mean(arg, tuple(params))
                    self.error(c, f"unknown parameter {arg!r}{hint}")
                    return _INVALID
                if not param.has_default:
                    self.error(c, f"parameter {arg!r} has no value (give it a default)")
                    return _INVALID
                return param.default
            if fn == "get_file":
                text = self.read_text(ctx.file, arg, c)
                return _INVALID if text is None else text
            if (
                not isinstance(arg, YList)
                or len(arg) not in (2, 3)
                or not all(isinstance(a, str) for a in arg)
            ):
                self.error(c, "get_attr takes [deployment, output] or [deployment, output, server]")
                return _INVALID
            ref = GetAttr(
                deployment=_qualify(stack, arg[0]),
                output=arg[1],
                server=arg[2] if len(arg) == 3 else None,
                file=c.file,
                line=c.line,
            )
            self._pending_attrs.append((ref, c))
            return ref
        if isinstance(value, YMap):
            out_map = {}
            for key, item in value.items():
                resolved = self.intrinsics(item, ctx.at(value, key), stack, params)
                if resolved is _INVALID:
                    return _INVALID
                out_map[str(key)] = resolved
            return out_map
        if isinstance(value, YList):
            out_list = []
            for index, item in enumerate(value):
                resolved = self.intrinsics(item, ctx.at(value, index), stack, params)
                if resolved is _INVALID:
                    return _INVALID
                out_list.append(resolved)
            return out_list
        return value

    # -- cross references ------------------------------------------------------------------

    def check_references(self, stacks: dict[str, Stack], components: dict[str, Component]) -> None:
        def find(qualified: str) -> Deployment | None:
            stack_name, _, dep_name = qualified.partition("/")
            stack = stacks.get(stack_name)
            return stack.deployments.get(dep_name) if stack else None

        for ref, c in self._pending_attrs:
            target = find(ref.deployment)
            if target is None:
                self.error(c, f"get_attr: unknown deployment {ref.deployment!r}")
                continue
            component = components.get(target.component)
            if component is not None and component.output(ref.output) is None:
                known = ", ".join(o.name for o in component.outputs) or "none"
                self.error(
                    c,
                    f"get_attr: component {component.name!r} of {ref.deployment!r} has no "
                    f"output {ref.output!r} (outputs: {known})",
                )
            if ref.server is not None and ref.server not in target.servers:
                self.error(c, f"get_attr: {ref.deployment!r} does not run on server {ref.server!r}")
        for stack, name, depends in self._pending_refs:
            for dep, c in depends:
                if dep == f"{stack}/{name}":
                    self.error(c, "a deployment cannot depend on itself")
                elif find(dep) is None:
                    self.error(c, f"depends_on: unknown deployment {dep!r}")

    def order(self, stacks: dict[str, Stack]) -> tuple[str, ...]:
        """Dependencies first; a cycle is a problem naming every step of it."""
        deps = {
            d.qualified: sorted(u for u in d.upstreams() if _exists(stacks, u))
            for s in stacks.values()
            for d in s.deployments.values()
        }
        # Cycles declared with ``converge: true`` on every member are allowed.
        converging = {
            d.qualified for s in stacks.values() for d in s.deployments.values() if d.converge
        }
        self.cycles, deps = declared_cycles(deps, converging)
        in_cycles = {m for c in self.cycles for m in c}
        for q in sorted(converging - in_cycles):
            dep = _lookup(stacks, q)
            self.error(
                _Ctx(dep.file, dep.line, f"deployments.{dep.name}.converge"),
                f"converge: true, but {q} is in no dependency cycle whose deployments all "
                "say converge: true",
            )
        position = {q: i for i, q in enumerate(deps)}
        done: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(q: str, trail: list[str]) -> None:
            if state.get(q) == 2:
                return
            if state.get(q) == 1:
                cycle = [*trail[trail.index(q) :], q]
                dep = _lookup(stacks, q)
                self.error(
                    _Ctx(dep.file, dep.line, f"deployments.{dep.name}"),
                    "dependency cycle: " + " -> ".join(cycle),
                )
                return
            state[q] = 1
            for u in sorted(deps[q], key=position.__getitem__):
                visit(u, [*trail, q])
            state[q] = 2
            done.append(q)

        for q in deps:
            visit(q, [])
        return tuple(done)


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


def _has_attr(value: Any) -> bool:
    if isinstance(value, GetAttr):
        return True
    if isinstance(value, dict):
        return any(_has_attr(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_attr(v) for v in value)
    return False


def _qualify(stack: str, name: str) -> str:
    return name if "/" in name else f"{stack}/{name}"


def _exists(stacks: dict[str, Stack], qualified: str) -> bool:
    stack, _, name = qualified.partition("/")
    return stack in stacks and name in stacks[stack].deployments


def _lookup(stacks: dict[str, Stack], qualified: str) -> Deployment:
    stack, _, name = qualified.partition("/")
    return stacks[stack].deployments[name]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, YMap | dict):
        return "a mapping"
    if isinstance(value, YList | list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return type(value).__name__


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def environment_names(tree: Tree) -> list[str]:
    """The environments a commit defines (``environments/<name>.yaml``), sorted."""
    if tree.kind(ENVIRONMENTS) != "dir":
        return []
    return sorted(
        name.rsplit(".", 1)[0]
        for name in tree.listdir(ENVIRONMENTS)
        if name.endswith((".yaml", ".yml")) and tree.kind(f"{ENVIRONMENTS}/{name}") == "file"
    )


def load_model(
    tree: Tree,
    on_problem: Callable[[Problem], None] | None = None,
    env: str | None = None,
) -> Model:
    """Load, check and resolve a commit's definitions, for environment ``env`` if given.

    Raises ``InvalidDefinitions`` with every problem found; warnings (none yet)
    would go to ``on_problem`` without failing the load.
    """
    loader = _Loader(tree)
    env_inventory = loader.environment(env) if env is not None else None
    inventory = env_inventory if env_inventory is not None else loader.inventory()
    components = loader.components()
    stacks = loader.stacks(components, inventory)
    loader.check_environment_params(stacks)
    loader.check_references(stacks, components)
    errors = [p for p in loader.problems if p.severity == "error"]
    order = loader.order(stacks) if not errors else ()
    errors = [p for p in loader.problems if p.severity == "error"]
    if on_problem is not None:
        for p in loader.problems:
            if p.severity != "error":
                on_problem(p)
    if errors:
        raise InvalidDefinitions(tree.commit, errors)
    return Model(
        commit=tree.commit,
        components=components,
        stacks=stacks,
        inventory=inventory,
        order=order,
        environment=env,
        cycles=tuple(loader.cycles),
    )
