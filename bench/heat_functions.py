"""What HOT's data functions and conditions cost when a commit is read.

``python -m bench.heat_functions [DEPLOYMENTS] [RUNS]`` writes one Heat
template of DEPLOYMENTS deployments (default 200), each input computed with
``repeat``, ``yaql``, ``map_merge``/``map_replace``, ``str_replace_strict``,
``list_concat_unique``, ``digest``, ``make_url`` and an ``if`` on a condition
built of ``and``/``not``/``contains``, commits it, and times ``load_model`` of
that commit (median of RUNS, default 5) against the same template with plain
literal inputs. Prints one line of JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitRepo, init_repo_from_dir

HEAD = """\
heat_template_version: 2018-08-31
parameters:
  zones: {type: comma_delimited_list, default: "az1,az2,az3"}
  env: {type: string, default: prod}
  base: {type: json, default: {workers: 4, log: info}}
conditions:
  prod: {equals: [{get_param: env}, prod]}
  wide: {and: [prod, {contains: [az3, {get_param: zones}]}, {not: {equals: [a, b]}}]}
resources:
  server1: {type: OS::Nova::Server}
  config:
    type: OS::Heat::SoftwareConfig
    properties: {group: script, config: "#!/bin/sh"}
"""

# Each deployment: this head, then its input values.
DEPLOYMENT = """\
  d{n}:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {{get_resource: config}}
      server: {{get_resource: server1}}
      input_values:
"""

WITH_FUNCTIONS = """\
        ports:
          repeat:
            template: "%z%:{n}:%p%"
            for_each: {{"%z%": {{get_param: zones}}, "%p%": ["80", "443"]}}
        count: {{yaql: {{expression: "$.data.z.len() * {n}", data: {{z: {{get_param: zones}}}}}}}}
        settings:
          map_replace:
          - map_merge: [{{get_param: base}}, {{id: "{n}"}}]
          - keys: {{log: log_level}}
        motd: {{str_replace_strict: {{template: "node NUM", params: {{NUM: "{n}"}}}}}}
        zones: {{list_concat_unique: [{{get_param: zones}}, [az1, az{n}]]}}
        sum: {{digest: [sha256, "{n}"]}}
        url: {{make_url: {{scheme: https, host: "h{n}.example.org", port: 8443, path: /x}}}}
        size: {{if: [wide, large, small]}}
"""

LITERAL = """\
        ports: ["az1:{n}:80", "az1:{n}:443", "az2:{n}:80", "az2:{n}:443"]
        count: {n}
        settings: {{workers: 4, log_level: info, id: "{n}"}}
        motd: "node {n}"
        zones: [az2, az3, az1, "az{n}"]
        sum: "{n}"
        url: "https://h{n}.example.org:8443/x"
        size: large
"""


def timed_load(root: Path, name: str, body: str, runs: int) -> float:
    """Median seconds of ``load_model`` of a commit holding ``body`` as a template."""
    src = root / f"{name}-src"
    (src / "stacks").mkdir(parents=True)
    (src / "inventory.yaml").write_text("kind: Inventory\nservers:\n  server1: {}\n")
    (src / "stacks" / "bench.yaml").write_text(body)
    init_repo_from_dir(src, root / name, "bench")
    times = []
    with GitRepo.open(root / name) as repo:
        for _ in range(runs):
            start = time.perf_counter()
            load_model(repo.tree("HEAD"))
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    deployments = int(argv[0]) if argv else 200
    runs = int(argv[1]) if len(argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        functions = HEAD + "".join(
            (DEPLOYMENT + WITH_FUNCTIONS).format(n=n) for n in range(deployments)
        )
        literal = HEAD + "".join((DEPLOYMENT + LITERAL).format(n=n) for n in range(deployments))
        with_functions = timed_load(root, "functions", functions, runs)
        plain = timed_load(root, "literal", literal, runs)
    print(
        json.dumps(
            {
                "deployments": deployments,
                "runs": runs,
                "load_with_functions_s": round(with_functions, 4),
                "load_literal_s": round(plain, 4),
                "functions_ms_per_deployment": round(
                    (with_functions - plain) * 1000 / deployments, 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
