"""Synthetic definitions repositories, written as real git commits through dulwich.

``write_fleet`` lays out ``servers`` servers in groups, ``components``
components (each a script config plus a small attached directory), and one
stack whose deployments bind components to groups, with data flow from a
``base`` deployment on every server's group leader to the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.gitrepo import commit_all, init_repo_from_dir


@dataclass(frozen=True)
class FleetShape:
    servers: int = 100
    groups: int = 4
    components: int = 5
    deployments_per_group: int = 3

    def server(self, i: int) -> str:
        return f"srv-{i:05d}"

    def group_of(self, i: int) -> int:
        return i % self.groups


def _component(index: int, version: str = "1") -> str:
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
      # revision {version}
files:
  assets: {{get_file: assets/}}
"""


def write_fleet(src: Path, shape: FleetShape) -> None:
    src.mkdir(parents=True, exist_ok=True)
    servers = [shape.server(i) for i in range(shape.servers)]
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
        (folder / "assets").mkdir(parents=True, exist_ok=True)
        (folder / "component.yaml").write_text(_component(c))
        (folder / "assets" / "README").write_text(f"assets of component {c}\n")
    lines = ["kind: Stack", "deployments:"]
    for g in range(shape.groups):
        for d in range(shape.deployments_per_group):
            c = (g + d) % shape.components
            lines += [
                f"  g{g}-d{d}:",
                f"    component: c{c}",
                f"    servers: {{group: g{g}}}",
                "    input_values:",
                '      version: "1"',
            ]
    (src / "stacks").mkdir(exist_ok=True)
    (src / "stacks" / "fleet.yaml").write_text("\n".join(lines) + "\n")


def init_fleet(root: Path, shape: FleetShape) -> Path:
    src = root / "fleet-src"
    write_fleet(src, shape)
    repo = root / "fleet-repo"
    init_repo_from_dir(src, repo, "synthetic fleet")
    return repo


def change_one_component(repo: Path, component: int = 0, revision: str = "2") -> str:
    path = repo / "components" / f"c{component}" / "component.yaml"
    path.write_text(_component(component, revision))
    return commit_all(repo, f"change component c{component}")
