"""Loading Heat templates that nest: a ResourceGroup of ``--members`` nested
stacks, each a template with a RandomString passed to two deployments (one
on the group's server, one whose input reads the other's output), on one
server per member. What is timed is ``load_model`` of the commit (parse,
nest, expand, derive every RandomString), the median of ``--runs`` runs.

    .venv/bin/python -m bench.heat_nested --members 500
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitRepo, init_repo_from_dir

TOP = """\
heat_template_version: 2018-08-31
resources:
  members:
    type: OS::Heat::ResourceGroup
    properties:
      count: {members}
      resource_def:
        type: Bench::Member
        properties:
          server: s%index%
          index: "%index%"
"""

MEMBER = """\
heat_template_version: 2018-08-31
parameters:
  server: {type: string}
  index: {type: string}
resources:
  password:
    type: OS::Heat::RandomString
    properties: {length: 24}
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs: [{name: password}, {name: index}]
      outputs: [{name: ready}]
      config: "#!/bin/sh\\necho ready > $heat_outputs_path.ready\\n"
  first:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_param: server}
      input_values:
        password: {get_attr: [password, value]}
        index: {get_param: index}
  second:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_param: server}
      input_values:
        password: {get_attr: [password, value]}
        index: {get_attr: [first, ready]}
outputs:
  ready: {value: {get_attr: [second, ready]}}
"""


def write_repo(root: Path, members: int) -> Path:
    src = root / "src"
    (src / "stacks/nested").mkdir(parents=True)
    servers = "\n".join(f"  s{i}: {{}}" for i in range(members))
    (src / "inventory.yaml").write_text(f"kind: Inventory\nservers:\n{servers}\n")
    (src / "stacks/app.yaml").write_text(TOP.replace("{members}", str(members)))
    (src / "stacks/app.env.yaml").write_text(
        "resource_registry:\n  Bench::Member: nested/member.yaml\n"
    )
    (src / "stacks/nested/member.yaml").write_text(MEMBER)
    repo = root / "repo"
    init_repo_from_dir(src, repo, "bench")
    return repo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=500)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        repo_path = write_repo(Path(tmp), args.members)
        with GitRepo.open(repo_path) as repo:
            tree = repo.tree("HEAD")
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                model = load_model(tree, render_secret=bytes(32))
                times.append(time.perf_counter() - start)
    deployments = len(model.deployments())
    print(
        f"{args.members} nested stacks, {deployments} deployments, "
        f"{args.members} RandomStrings: load_model median {statistics.median(times):.3f} s "
        f"(min {min(times):.3f} s, {args.runs} runs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
