"""Synthetic definitions repositories, written as real git commits through dulwich.

The shape (``FleetShape``): ``stacks`` stacks, ``components`` components (each
a script config, one attached file and an attached directory bundle),
``groups`` groups over ``servers`` servers (server *i* in group *i mod G*), and
``deployments`` deployments per server: every group gets that many
deployments, all targeting the whole group, in the stack ``g mod S``. Data
flow: deployment ``d0`` of a group reports an ``endpoint``; every other
deployment of the group reads the one reported by the group's first server
(``get_attr: [g<g>-d0, endpoint, <leader>]``), so a group's configs are
identical across its servers and wait for the leader's ``d0``. Each group's
deployments take ``version`` from a stack parameter of its own
(``version_g<g>``).

Follow-up commits: ``change_one_component`` (a component's script),
``change_parameter`` (one group's ``version`` parameter), ``rename_file`` (an
attached file moved, content unchanged: renders the same configs), and
``revert`` (``controller.gitrepo.revert``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from setpoint.controller.definitions.repository import commit_all, init_repo_from_dir

FIXED_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z: reproducible commit ids


@dataclass(frozen=True)
class FleetShape:
    servers: int = 100
    groups: int = 4
    components: int = 5
    deployments: int = 3  # per server (and per group)
    stacks: int = 2

    @property
    def derived(self) -> int:
        """(deployment, server) pairs: the derived configs a full render makes."""
        return self.servers * self.deployments

    def server(self, i: int) -> str:
        return f"srv-{i:05d}"

    def group_of(self, i: int) -> int:
        return i % self.groups

    def stack_of(self, group: int) -> int:
        return group % self.stacks

    def leader(self, group: int) -> str:
        return self.server(group)

    def component_of(self, group: int, d: int) -> int:
        return (group + d) % self.components

    def all_servers(self) -> list[str]:
        return [self.server(i) for i in range(self.servers)]


def _component(index: int, revision: str = "1", notes: str = "notes.txt") -> str:
    return f"""kind: Component
description: synthetic component {index}
inputs:
  - name: version
    type: String
  - name: upstream
    type: String
    default: none
outputs:
  - name: endpoint
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      echo "component {index} version $version (upstream $upstream)" > state-{index}
      printf '%s:{index}' "$deploy_server_id" > "$heat_outputs_path.endpoint"
      # revision {revision}
files:
  notes: {{get_file: {notes}}}
  assets: {{get_file: assets/}}
"""


def _stack(shape: FleetShape, stack: int, versions: dict[int, str]) -> str:
    groups = [g for g in range(shape.groups) if shape.stack_of(g) == stack]
    lines = ["kind: Stack", "parameters:"]
    for g in groups:
        lines += [f"  version_g{g}:", "    type: String", f'    default: "{versions.get(g, "1")}"']
    lines += ["deployments:"] if groups else ["deployments: {}"]
    for g in groups:
        for d in range(shape.deployments):
            lines += [
                f"  g{g}-d{d}:",
                f"    component: c{shape.component_of(g, d)}",
                f"    servers: {{group: g{g}}}",
                "    input_values:",
                f"      version: {{get_param: version_g{g}}}",
            ]
            if d > 0:
                leader = shape.leader(g)
                lines.append(f"      upstream: {{get_attr: [g{g}-d0, endpoint, {leader}]}}")
    return "\n".join(lines) + "\n"


def write_fleet(src: Path, shape: FleetShape) -> None:
    src.mkdir(parents=True, exist_ok=True)
    servers = shape.all_servers()
    groups: dict[int, list[str]] = {g: [] for g in range(shape.groups)}
    for i, name in enumerate(servers):
        groups[shape.group_of(i)].append(name)
    inventory = ["kind: Inventory", "servers:"]
    inventory += [f"  {s}: {{group: g{shape.group_of(i)}}}" for i, s in enumerate(servers)]
    inventory += ["groups:"]
    inventory += [f"  g{g}: [{', '.join(members)}]" for g, members in groups.items()]
    (src / "inventory.yaml").write_text("\n".join(inventory) + "\n")
    for c in range(shape.components):
        folder = src / "components" / f"c{c}"
        (folder / "assets" / "conf.d").mkdir(parents=True, exist_ok=True)
        (folder / "component.yaml").write_text(_component(c))
        (folder / "notes.txt").write_text(f"notes of component {c}\n")
        (folder / "assets" / "README").write_text(f"assets of component {c}\n")
        (folder / "assets" / "conf.d" / "10-base.conf").write_text(f"component = {c}\n" * 20)
    (src / "stacks").mkdir(exist_ok=True)
    for s in range(shape.stacks):
        (src / "stacks" / f"fleet-{s}.yaml").write_text(_stack(shape, s, {}))


def init_fleet(root: Path, shape: FleetShape) -> Path:
    src = root / "fleet-src"
    write_fleet(src, shape)
    repo = root / "fleet-repo"
    init_repo_from_dir(src, repo, "synthetic fleet", timestamp=FIXED_TIME)
    return repo


def change_one_component(repo: Path, component: int = 0, revision: str = "2") -> str:
    """A new script for one component: every deployment of it changes."""
    path = repo / "components" / f"c{component}" / "component.yaml"
    path.write_text(_component(component, revision))
    return commit_all(repo, f"change component c{component}", timestamp=FIXED_TIME + 60)


def change_parameter(repo: Path, shape: FleetShape, group: int = 0, version: str = "2") -> str:
    """A new value of the parameter one group's deployments use."""
    stack = shape.stack_of(group)
    path = repo / "stacks" / f"fleet-{stack}.yaml"
    path.write_text(_stack(shape, stack, {group: version}))
    return commit_all(repo, f"group g{group}: version {version}", timestamp=FIXED_TIME + 120)


def rename_file(repo: Path, component: int = 1) -> str:
    """Move an attached file (same content, same name under ``files:``)."""
    folder = repo / "components" / f"c{component}"
    (folder / "doc").mkdir(exist_ok=True)
    (folder / "notes.txt").rename(folder / "doc" / "notes.txt")
    (folder / "component.yaml").write_text(_component(component, notes="doc/notes.txt"))
    return commit_all(repo, f"c{component}: move notes.txt to doc/", timestamp=FIXED_TIME + 180)
