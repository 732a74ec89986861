"""``setpoint serve`` watched in chromium while agent processes converge the
example fleet: the overview updates in place from nothing published to every
deployment converged, and history shows the commit converged."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser_fixtures import ServeFactory

pytestmark = pytest.mark.e2e


def text_of(driver: Any, css: str) -> str:
    """The text of ``css``, read again when live updates swapped the element
    between finding it and reading it."""
    for _ in range(20):
        try:
            return str(driver.find_element(By.CSS_SELECTOR, css).text)
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{css} kept being replaced")


def card(driver: Any, state: str) -> int:
    return int(text_of(driver, f".card.st-{state} .big"))


def test_the_overview_follows_agents_converging_the_fleet(
    example_repo: Path,
    tmp_path: Path,
    start_agents: Callable[..., object],
    serve: ServeFactory,
    browser: Any,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    served = serve(
        "--store", str(store), "--repo", str(example_repo),
        "--refresh", "0.2", "--live-every", "0.5",
    )  # fmt: skip
    browser.get(served.url + "/")
    assert "Nothing published yet." in browser.find_element(By.TAG_NAME, "main").text
    start_agents(store)
    reconcile = subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning", "reconcile",
         "--repo", str(example_repo), "--store", str(store), "--notes",
         "--wait", "--timeout", "90", "--interval", "0.1"],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    WebDriverWait(browser, 30).until(
        lambda d: card(d, "converged") > 0 and card(d, "in-progress") + card(d, "waiting") == 0
    )
    assert "Nothing published yet." not in text_of(browser, "main")
    assert card(browser, "failed") + card(browser, "quarantined") == 0
    rows = browser.find_elements(By.CSS_SELECTOR, "table.deployments tbody tr")
    assert len(rows) >= 3
    browser.find_element(By.LINK_TEXT, "History").click()
    # Read the history page's table, not the overview's still on screen while
    # the click's navigation completes.
    WebDriverWait(browser, 30).until(lambda d: text_of(d, "h1") == "History")
    assert "converged" in text_of(browser, "main table tbody")
