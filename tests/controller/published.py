"""A small published fleet for store maintenance tests (fsck, gc): a real git
repository, a signing key, and a memory or local store the controller published to."""

from __future__ import annotations

from pathlib import Path

from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.store.base import Store, blob_key
from setpoint.store.documents import DeploymentReport, Manifest, Pointer, Report
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore
from setpoint.store.signing import SigningKey

SERVERS = ("m1", "m2", "m3")

INVENTORY = """\
kind: Inventory
servers:
  m1: {}
  m2: {}
  m3: {}
groups:
  nodes: [m1, m2, m3]
"""

COMPONENT = """\
kind: Component
inputs:
  - name: version
    type: String
configs:
  - tool: script
    actions: [CREATE, UPDATE, DELETE]
    config: "#!/bin/sh\\necho running version $version\\n"
files:
  site: {get_file: site/}
"""


def stack(version: str) -> str:
    return f"""\
kind: Stack
deployments:
  app:
    component: app
    servers: {{group: nodes}}
    input_values:
      version: "{version}"
"""


def open_test_store(kind: str, root: Path) -> Store:
    return MemoryStore(str(root)) if kind == "memory" else LocalStore(root / "store")


def overwrite(store: Store, key: str, data: bytes) -> None:
    """Write bytes behind the store's back, as a broken disk or a stray tool would."""
    if isinstance(store, MemoryStore):
        store.corrupt(key, data)
    else:
        assert isinstance(store, LocalStore)
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class Published:
    def __init__(self, root: Path, store: Store) -> None:
        src = root / "src"
        (src / "components/app/site").mkdir(parents=True)
        (src / "stacks").mkdir()
        (src / "inventory.yaml").write_text(INVENTORY)
        (src / "components/app/component.yaml").write_text(COMPONENT)
        (src / "components/app/site/index.html").write_text("hello\n")
        (src / "stacks/s.yaml").write_text(stack("1"))
        self.repo_path = root / "repo"
        init_repo_from_dir(src, self.repo_path, "initial")
        self.repo = GitRepo.open(self.repo_path)
        self.store = store
        self.key = SigningKey.generate("ctl")
        self.policy = PointerPolicy(self.key)
        self.trusted = {"ctl": self.key.public()}

    def commit(self, version: str) -> str:
        (self.repo_path / "stacks/s.yaml").write_text(stack(version))
        return commit_all(self.repo_path, f"version {version}")

    def reconcile(self, store: Store | None = None) -> None:
        Reconciler(self.repo, store or self.store, policy=self.policy).run_pass()

    def pointer(self, server: str = "m1") -> Pointer:
        pointer = self.store.read_pointer(server)
        assert pointer is not None
        return pointer

    def manifest(self, server: str = "m1") -> Manifest:
        return Manifest.from_dict(self.store.get_json_blob(self.pointer(server).manifest))

    def config(self, server: str = "m1") -> str:
        return self.manifest(server).deployments[0].config

    def zip(self, server: str = "m1") -> str:
        (zip_digest,) = self.manifest(server).bundles.values()
        return zip_digest

    def report(self, server: str, generation: int, names: str | None = None) -> Report:
        return Report(
            server=names or server,
            generation=generation,
            manifest=self.pointer(server).manifest,
            updated_at="2026-12-02T00:00:00Z",
        )

    def key_of(self, digest: str) -> str:
        return blob_key(digest)


def report_every_entry(store: Store, server: str, status: str = "COMPLETE") -> None:
    """The report a server's agent writes once every entry of its pointer ran
    (``status``: COMPLETE, or FAILED for good)."""
    pointer = store.read_pointer(server)
    assert pointer is not None
    manifest = Manifest.from_dict(store.get_json_blob(pointer.manifest))
    store.write_report(
        Report(
            server=server,
            generation=pointer.generation,
            manifest=pointer.manifest,
            updated_at="2026-12-02T00:00:00Z",
            deployments={
                e.name: DeploymentReport(
                    name=e.name, config=e.config, action="CREATE", status=status, final=True
                )
                for e in manifest.deployments
            },
        )
    )
