"""``setpoint init DIR``: a definitions repository that deploys as it is, and what
a controller and its agents need to deploy it on this machine.

In DIR, committed: an inventory (servers and a group), one component (a
script and an attached file), one stack. In ``DIR/.setpoint/``, ignored by
git because it holds secrets: a pointer signing key (and the render secret
beside it, as ``setpoint keygen`` writes them), a local store, each
server's agent bootstrap (as ``setpoint enroll`` prints it) and a script that
runs the agents as local processes standing in for the servers. The commands
that deploy it are the ones an operator runs for a real fleet, on real
servers: start the agents, ``setpoint reconcile``, ``setpoint status``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from setpoint.controller.definitions.render_secret import create_beside_signing_key
from setpoint.controller.definitions.repository import init_repo_from_dir
from setpoint.controller.errors import SetpointError
from setpoint.controller.fleet.enroll import bootstrap_for
from setpoint.controller.fleet.local_agents import SCRIPT, agents_script
from setpoint.store.documents import is_server_name
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey

LOCAL = ".setpoint"
KEY_NAME = "controller"
GROUP = "web"

COMPONENT = """\
kind: Component
description: A greeting on each server, from a banner file attached to the config.
inputs:
  - name: greeting
    type: String
    default: Hello
outputs:
  - name: greeting_file
    description: Where the greeting was written on the server.
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: {get_file: configure.sh}
  - tool: script
    actions: [DELETE]
    config: |
      #!/bin/sh
      rm -f greeting.txt
files:
  banner: {get_file: banner.txt}    # on the server: ${setpoint_files_dir}/banner
"""

CONFIGURE = """\
#!/bin/sh
# Runs in the agent's work directory for this deployment, with each input as a
# variable; the files attached to the config are in ${setpoint_files_dir}.
set -eu
{ printf '%s, %s!\\n' "${greeting}" "${deploy_server_id}"; cat "${setpoint_files_dir}/banner"; } \\
  > greeting.txt
cat greeting.txt
printf '%s' "$(pwd)/greeting.txt" > "${heat_outputs_path}.greeting_file"
"""

BANNER = "This server is configured by setpoint: edit the repository, not this file.\n"

STACK = f"""\
kind: Stack
parameters:
  greeting: {{type: String, default: Hello}}
deployments:
  hello:
    component: hello
    servers: {{group: {GROUP}}}
    actions: [CREATE, UPDATE, DELETE]
    input_values:
      greeting: {{get_param: greeting}}
"""


class ScaffoldError(SetpointError):
    """``setpoint init`` refused: nothing was written."""


@dataclass(frozen=True)
class Scaffold:
    root: Path
    commit: str
    servers: tuple[str, ...]
    key: Path
    store: Path
    agents_script: Path

    def commands(self) -> list[str]:
        """What deploys it, run from ``root``: the agents, a reconcile, a look."""
        key, store = self.key.relative_to(self.root), self.store.relative_to(self.root)
        return [
            f"{self.agents_command} start",
            f"setpoint reconcile --signing-key {key} --store {store} --wait",
            f"setpoint status --store {store}",
        ]

    @property
    def agents_command(self) -> str:
        """How to manage the local agents from ``root``: add start, stop, status..."""
        return f"sh {self.agents_script.relative_to(self.root)}"


def _inventory(servers: tuple[str, ...]) -> str:
    lines = ["# The servers setpoint manages, and the groups deployments can target.",
             "kind: Inventory", "servers:"]  # fmt: skip
    lines += [f"  {s}: {{}}" for s in servers]
    lines += ["groups:", f"  {GROUP}: [{', '.join(servers)}]"]
    return "\n".join(lines) + "\n"


def scaffold(root: Path, servers: tuple[str, ...]) -> Scaffold:
    """Create the repository and its local fleet at ``root`` (absent or empty)."""
    root = root.absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{root} exists and is not an empty directory: nothing written")
    bad = [s for s in servers if not is_server_name(s)]
    if bad or not servers:
        raise ScaffoldError(f"not valid server names: {', '.join(map(repr, bad)) or '(none)'}")
    files = {
        ".gitignore": f"# a signing key, a store, agents' state: never committed\n{LOCAL}/\n",
        "inventory.yaml": _inventory(servers),
        "components/hello/component.yaml": COMPONENT,
        "components/hello/configure.sh": CONFIGURE,
        "components/hello/banner.txt": BANNER,
        "stacks/hello.yaml": STACK,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in files.items():
            path = Path(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        Path(tmp, "components/hello/configure.sh").chmod(0o755)
        commit = init_repo_from_dir(Path(tmp), root, "A fleet from setpoint init")
    root.chmod(0o755)  # the copy took the temporary directory's 0700
    local = root / LOCAL
    key = SigningKey.generate(KEY_NAME)
    key_path = local / "keys" / f"{KEY_NAME}.key"
    key_path.parent.mkdir(parents=True)
    key.save(key_path)
    (local / "keys" / f"{KEY_NAME}.pub").write_text(f"{key.public()}\n")
    create_beside_signing_key(key_path)  # as 'setpoint keygen' does
    store_dir = local / "store"
    store_dir.mkdir()
    store = LocalStore(store_dir)
    (local / "agents").mkdir()
    for server in servers:
        boot = bootstrap_for(store, server, {KEY_NAME: str(key.public())})
        path = local / "agents" / f"{server}.json"
        path.write_text(json.dumps(boot.to_dict(), indent=2, sort_keys=True) + "\n")
    script = local / SCRIPT
    script.write_text(agents_script(root, LOCAL, servers))
    return Scaffold(root, commit, servers, key_path, store_dir, script)
