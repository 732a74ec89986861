"""The dashboard in a real browser: Debian's chromium, driven by selenium
through chromium-driver, on a fleet with a rollout in flight, a failure, a
quarantine and an unreachable agent.

The screenshots of the overview and of a server page are saved under the
test's temporary directory; with ``SETPOINT_SCREENSHOTS=DIR`` they are saved
there too (``SETPOINT_SCREENSHOTS=docs/screenshots`` refreshes the README's).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from setpoint.store.local import LocalStore
from setpoint.store.timestamps import format_timestamp
from tests.browser_fixtures import ServeFactory
from tests.dashboard.dashfleet import SECRET, FleetOnDisk, build_fleet

PNG = b"\x89PNG\r\n\x1a\n"


def text(driver: Any) -> str:
    return str(driver.find_element(By.TAG_NAME, "main").text)


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    """The whole page as a PNG in ``tmp_path`` (and in $SETPOINT_SCREENSHOTS)."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    # Headless chromium keeps its first window size; the viewport is set instead.
    metrics = {"width": 1400, "height": min(height, 2400), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    wanted = os.environ.get("SETPOINT_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(wanted) / path.name)
    return path


def test_the_overview_shows_the_rollout_the_failure_and_the_quarantine(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory, browser: Any, tmp_path: Path
) -> None:
    served = serve("--store", str(fleet_on_disk.store), "--repo", str(fleet_on_disk.repo))
    browser.get(served.url + "/")
    assert browser.title == "Fleet · setpoint"
    rollouts = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "tr.rollout")]
    assert any(r.startswith("shop/web batch 1 of 3 rolling") for r in rollouts)
    assert any(r.startswith("shop/db batch 1 of 1 halted") for r in rollouts)
    rows = {
        r.find_element(By.CSS_SELECTOR, "td:nth-child(2) a").text: r
        for r in browser.find_elements(By.CSS_SELECTOR, "table.deployments tbody tr")
    }
    assert "pause_time: next batch at +3600s (8)" in rows["shop/web"].text
    assert "troubled" in str(rows["shop/db"].get_attribute("class"))
    trouble = browser.find_element(By.CSS_SELECTOR, "ul.trouble").text
    assert "db-02 quarantined" in trouble
    assert "cache-01 unreachable" in trouble
    assert fleet_on_disk.third[:12] in text(browser)  # the commit desired
    assert SECRET not in browser.page_source
    shot = screenshot(browser, tmp_path, "overview")
    assert shot.read_bytes().startswith(PNG)


def test_links_lead_to_the_server_and_the_deployment(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory, browser: Any, tmp_path: Path
) -> None:
    served = serve("--store", str(fleet_on_disk.store), "--repo", str(fleet_on_disk.repo))
    browser.get(served.url + "/")
    browser.find_element(By.LINK_TEXT, "db-02").click()
    assert browser.current_url == served.url + "/servers/db-02"
    page = text(browser)
    assert "FAILED (quarantined)" in page
    assert "connecting with password ********" in page
    assert "exit 3" in page
    assert SECRET not in browser.page_source
    shot = screenshot(browser, tmp_path, "server")
    assert shot.read_bytes().startswith(PNG)

    browser.find_element(By.LINK_TEXT, "shop/db").click()
    assert browser.current_url == served.url + "/deployments/shop/db"
    assert "password = ******** (secret)" in text(browser)
    assert SECRET not in browser.page_source

    browser.get(served.url + "/deployments/shop/web")
    servers = [
        row.find_element(By.CSS_SELECTOR, "td a").text
        for row in browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    ]
    # Rollout order: the first batch, then those the next batches take.
    assert servers[:4] == ["web-01", "web-02", "web-03", "web-04"]
    assert sorted(servers[4:]) == [f"web-{i:02d}" for i in range(5, 13)]
    diff = browser.find_element(By.CSS_SELECTOR, "pre.diff").text
    assert '-  version = "1"' in diff
    assert '+  version = "2"' in diff

    for name, path in (("History", "/history"), ("Pending change", "/pending")):
        browser.find_element(By.LINK_TEXT, name).click()
        assert browser.current_url == served.url + path
        assert SECRET not in browser.page_source
    assert "shop/web" in text(browser)  # the plan of version 3


def test_pages_work_without_javascript(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory, browser_without_js: Any
) -> None:
    served = serve("--store", str(fleet_on_disk.store))
    browser_without_js.get(served.url + "/")
    assert browser_without_js.find_element(By.ID, "live-status").text == ""  # live.js never ran
    assert "batch 1 of 3" in text(browser_without_js)
    browser_without_js.find_element(By.LINK_TEXT, "Servers").click()
    assert "db-02" in text(browser_without_js)


def test_a_page_updates_in_place_when_the_fleet_changes(
    tmp_path: Path, serve: ServeFactory, browser: Any
) -> None:
    fleet = build_fleet(tmp_path / "fleet")
    served = serve("--store", str(fleet.store), "--refresh", "0.2", "--live-every", "0.5")
    browser.get(served.url + "/")
    browser.execute_script("document.body.dataset.marker = 'loaded once'")
    assert "cache-01 unreachable" in browser.find_element(By.CSS_SELECTOR, "ul.trouble").text
    # cache-01's agent answers again: a fresh report.
    store = LocalStore(fleet.store)
    report = store.read_report("cache-01")
    assert report is not None
    store.write_report(dataclasses.replace(report, updated_at=format_timestamp(time.time())))
    WebDriverWait(browser, 15).until(
        lambda d: "cache-01" not in d.find_element(By.TAG_NAME, "main").text
    )
    # Updated in place, not reloaded.
    assert browser.execute_script("return document.body.dataset.marker") == "loaded once"
    assert browser.find_element(By.ID, "live-status").text.startswith("live")
