"""Which branch heads the controller may deploy: fast-forwards only, signed if asked.

- A force push (the new head does not descend from the commit being deployed)
  is refused unless ``allow_force_push``: rewriting published history should
  be a decision, not an accident.
- With a keyring, a head is deployed only if its OpenPGP signature verifies
  against a key in that keyring. dulwich splits the commit into the signed
  payload and the signature (``Commit.extract_signature``); ``gpgv`` checks
  them against exactly that keyring (never the user's own trust database).

A refused head is reported once and skipped: the controller keeps converging
the commit it had, and deploys again when an acceptable head arrives.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dulwich.graph import can_fast_forward
from dulwich.objects import SIGNATURE_PGP, Commit, ObjectID
from dulwich.repo import Repo

from setpoint.controller.errors import SetpointError


class KeyringError(SetpointError):
    """The keyring cannot be used (missing file, no gpgv)."""


@dataclass(frozen=True)
class Verdict:
    commit: str
    ok: bool
    reason: str = ""
    signer: str | None = None  # fingerprint of the key that signed, when verified


class KeyringVerifier:
    """Verify commit signatures against the OpenPGP keys in one keyring file.

    The keyring is what ``gpg --export KEYID... > keyring.gpg`` writes; an
    ASCII-armored export is converted once with ``gpg --dearmor``.
    """

    def __init__(self, keyring: str | Path, gpgv: str | None = None) -> None:
        found = gpgv or shutil.which("gpgv")
        if found is None:
            raise KeyringError("--require-signed needs gpgv (Debian package gpgv)")
        self.gpgv: str = found
        path = Path(keyring).resolve()
        if not path.is_file():
            raise KeyringError(f"keyring {keyring} is not a file")
        self._home = tempfile.TemporaryDirectory(prefix="setpoint-gpg-")
        if path.read_bytes().lstrip().startswith(b"-----BEGIN PGP"):
            gpg = shutil.which("gpg")
            if gpg is None:
                raise KeyringError("an armored keyring needs gpg to convert it (or export binary)")
            binary = Path(self._home.name) / "keyring.gpg"
            subprocess.run(
                [gpg, "--batch", "--homedir", self._home.name, "--dearmor", "-o", str(binary),
                 str(path)],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            path = binary
        self.keyring = str(path)

    def close(self) -> None:
        self._home.cleanup()

    def verify(self, commit: Commit) -> Verdict:
        sha = commit.id.decode("ascii")
        payload, signature, kind = commit.extract_signature()
        if signature is None:
            return Verdict(sha, False, "unsigned")
        if kind != SIGNATURE_PGP:
            return Verdict(
                sha, False, "signed with an SSH key; only OpenPGP keyrings are supported"
            )
        with tempfile.TemporaryDirectory(dir=self._home.name) as work:
            sig, data = Path(work) / "commit.sig", Path(work) / "commit"
            sig.write_bytes(signature)
            data.write_bytes(payload)
            result = subprocess.run(
                [self.gpgv, "--homedir", self._home.name, "--status-fd", "1",
                 "--keyring", self.keyring, str(sig), str(data)],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
        status = result.stdout.decode("utf-8", "replace").splitlines()
        valid = [line.split() for line in status if line.startswith("[GNUPG:] VALIDSIG ")]
        if result.returncode == 0 and valid:
            return Verdict(sha, True, signer=valid[0][2])
        if any(line.startswith(("[GNUPG:] NO_PUBKEY", "[GNUPG:] ERRSIG")) for line in status):
            return Verdict(sha, False, "signed by a key that is not in the keyring")
        return Verdict(sha, False, "bad signature")


@dataclass
class CommitGate:
    """Decide whether ``head`` may replace ``current`` (the commit being deployed)."""

    repo_path: str
    allow_force_push: bool = False
    verifier: KeyringVerifier | None = None

    def check(self, current: str | None, head: str) -> Verdict:
        with Repo(self.repo_path) as repo:
            obj = repo.object_store[ObjectID(head.encode("ascii"))]
            if not isinstance(obj, Commit):
                return Verdict(head, False, "not a commit")
            if current is not None and current != head and not self.allow_force_push:
                known = ObjectID(current.encode("ascii")) in repo.object_store
                if not known or not can_fast_forward(
                    repo, ObjectID(current.encode("ascii")), obj.id
                ):
                    return Verdict(
                        head,
                        False,
                        f"not a fast-forward of {current[:12]} (force push); "
                        "refused without --allow-force-push",
                    )
            if self.verifier is not None:
                return self.verifier.verify(obj)
        return Verdict(head, True)
