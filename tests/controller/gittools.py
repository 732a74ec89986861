"""Helpers for tests that drive real git (and gpg) command lines.

A test that needs a tool skips on a developer's machine without it, and fails
under CI (``CI=true``), where ``.ci/install-git-tools.sh`` installs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/install-git-tools.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class Git:
    """Run ``git`` with a private HOME: no user config (commit.gpgsign, hooks) leaks in."""

    def __init__(self, home: Path) -> None:
        need_tool("git")
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Ada Author",
            "GIT_AUTHOR_EMAIL": "ada@example.invalid",
            "GIT_COMMITTER_NAME": "Ada Author",
            "GIT_COMMITTER_EMAIL": "ada@example.invalid",
            "GNUPGHOME": str(home / "gnupg"),
        }

    def __call__(self, cwd: Path, *args: str) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout.strip()

    def commit_files(self, repo: Path, files: dict[str, str], message: str, *extra: str) -> str:
        for rel, text in files.items():
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self(repo, "add", "-A")
        self(repo, "commit", "-q", "-m", message, *extra)
        return self(repo, "rev-parse", "HEAD")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def git_daemon(git: Git, base: Path) -> Iterator[str]:
    """``git daemon`` serving the repositories below ``base``; yields its git:// URL prefix."""
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
         f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base)],
        env=git.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("git daemon did not start") from None
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def gpg_key(git: Git, name: str) -> Iterator[str]:
    """A fresh signing key in git's GNUPGHOME; yields its fingerprint."""
    need_tool("gpg")
    home = Path(git.env["GNUPGHOME"])
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback"]
    subprocess.run(
        [*gpg, "--passphrase", "", "--quick-gen-key", f"{name} <{name}@example.invalid>",
         "ed25519", "sign", "never"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-secret-keys", f"{name}@example.invalid"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr")
    )
    try:
        yield fingerprint
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip


def export_keyring(git: Git, fingerprint: str, dest: Path) -> Path:
    subprocess.run(
        ["gpg", "--batch", "--homedir", git.env["GNUPGHOME"], "--export", "-o", str(dest),
         fingerprint],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return dest
