"""``setpoint serve`` started as a real process on a free port, and Debian's
chromium driven through chromium-driver by selenium: fixtures ``serve``,
``browser`` and ``browser_without_js`` for the dashboard's tests and the
end-to-end ones (a plugin of tests/conftest.py).

- ``CI=true``: a browser that is not installed fails the tests that need it,
  instead of skipping them (``.ci/install-browser.sh`` installs it).
- ``SETPOINT_CHROMIUM`` and ``SETPOINT_CHROMEDRIVER`` name other binaries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SETPOINT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SETPOINT_CHROMEDRIVER", "/usr/bin/chromedriver")


def unavailable(reason: str) -> None:
    """Skip the test, or under ``CI=true`` fail it: CI must run the browser tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


class Served:
    """A ``setpoint serve`` process and the URL it printed. Its stderr goes to a
    file (a pipe nobody reads would stall the server once full), and is read
    into ``stderr`` when it stops."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "setpoint.controller.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.stderr = ""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("setpoint serve: "):
            self.stop()
            raise AssertionError(f"serve did not start: {line!r} {self.stderr}")
        self.url = line.split()[2].rstrip("/")

    def stop(self) -> None:
        if self._errors.closed:
            return  # stopped already (by the test, then by the fixture)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._errors.seek(0)
        self.stderr = self._errors.read()
        self._errors.close()


ServeFactory = Callable[..., Served]


@pytest.fixture
def serve() -> Iterator[ServeFactory]:
    """Start ``setpoint serve ARGS`` (stopped at the end of the test)."""
    started: list[Served] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        served = Served(list(args), env)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def chrome(tmp_path: Path, javascript: bool = True) -> Any:
    """Headless chromium, with a fresh profile and nothing reaching the network
    but the dashboard."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable(
            f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    service = Service(executable_path=CHROMEDRIVER, log_output=subprocess.DEVNULL)
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = chrome(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


@pytest.fixture
def browser_without_js(tmp_path: Path) -> Iterator[Any]:
    driver = chrome(tmp_path, javascript=False)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
