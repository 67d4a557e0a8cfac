"""The inspector in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven through Selenium, against the proxy in front of the stand-in, with curl as the client.

A request made with curl appears on the page; opening it shows its headers, the token
redacted and nowhere in the page; the filter hides it; the HAR download holds it. With
INSPECTOR_SCREENSHOT=PATH set, the test also saves the screenshot the README shows
(``INSPECTOR_SCREENSHOT=docs/inspector.png .venv/bin/pytest tests/test_inspector_browser.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from proxy.app import create_app
from proxy.config import load_config
from proxy.keys import TOKEN_CACHES
from proxy.standin import StandinSettings, create_standin_app
from tests.needs import missing

API = "/api/v1.0/external"
PROBE = f"{API}/sdworkspace/CurrentWorkspaces?probe=browser"
DOCUMENT = "https://example.test/a.pdf"
CLIENT_CREDENTIAL = "Bearer what-the-client-sent"
WAIT_SECONDS = 15
HEADLESS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")


@dataclass
class Demo:
    url: str
    proxy: TestServer
    secret: str

    @property
    def token(self) -> str:
        held = self.proxy.app[TOKEN_CACHES]["default"].current()
        assert held is not None
        return held.value


@pytest.fixture
async def demo(aiohttp_server) -> Demo:  # type: ignore[no-untyped-def]
    """The proxy in front of the stand-in, as `smartdoc-proxy demo` runs them."""
    settings = StandinSettings()
    standin = await aiohttp_server(create_standin_app(settings))
    config = load_config(
        {"upstream": str(standin.make_url("/")), "client_id": settings.client_id,
         "inspect_bodies": "true"},
        {"SMARTDOC_CLIENT_SECRET": settings.client_secret},
    )  # fmt: skip
    proxy = await aiohttp_server(create_app(config))
    return Demo(str(proxy.make_url("")).rstrip("/"), proxy, settings.client_secret)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def browser(downloads: Path) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        missing("chromium or chromedriver is not installed (.ci/run installs chromium and "
                "chromium-driver)")  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (*HEADLESS, "--window-size=1400,1000"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    # Both paths given: Selenium Manager has nothing to look up or download.
    web = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield web
    finally:
        web.quit()


async def curl(*args: str, check: bool = True) -> str:
    """The curl binary, as a person would run it; ``check``: it must get a 2xx."""
    if shutil.which("curl") is None:
        missing("curl is not installed (.ci/run installs it)")
    fail = ("--fail-with-body",) if check else ()
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", *fail, *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), WAIT_SECONDS)
    assert process.returncode == 0, out
    return out.decode()


async def until(browser: WebDriver, condition: Callable[[WebDriver], object]) -> object:
    """Wait (in a thread: Selenium blocks) until ``condition`` holds in the browser."""
    wait = WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.1)
    return await asyncio.to_thread(wait.until, condition)


def row_for(target: str) -> Callable[[WebDriver], WebElement | bool]:
    def find(browser: WebDriver) -> WebElement | bool:
        for row in browser.find_elements(By.CSS_SELECTOR, "#exchanges tbody tr"):
            if row.find_element(By.CSS_SELECTOR, ".target").text == target:
                return row
        return False

    return find


def header_value(browser: WebDriver, table: str, name: str) -> str | None:
    for row in browser.find_elements(By.CSS_SELECTOR, f"#{table} tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if len(cells) == 2 and cells[0].text == name:
            return cells[1].text
    return None


async def test_a_curl_request_shows_up_live_redacted_filterable_and_exportable(
    demo: Demo, browser: WebDriver, downloads: Path
) -> None:
    await asyncio.to_thread(browser.get, demo.url + "/_proxy/")
    await until(browser, lambda b: b.find_element(By.ID, "live").text == "live")

    await curl("-H", f"Authorization: {CLIENT_CREDENTIAL}", demo.url + PROBE)

    row = await until(browser, row_for(PROBE))
    assert isinstance(row, WebElement)
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == ["anonymous", "default", "GET"]
    assert cells[5] == "200"

    await asyncio.to_thread(row.click)
    await until(browser, lambda b: header_value(b, "h-upstreamRequest", "Authorization"))
    assert header_value(browser, "h-upstreamRequest", "Authorization") == "[redacted]"
    assert header_value(browser, "h-client", "Authorization") == "[redacted]"
    assert (header_value(browser, "h-client", "User-Agent") or "").startswith("curl/")
    assert "workspaceName" in browser.find_element(By.ID, "b-response").text
    page = browser.page_source
    for secret in (demo.token, demo.secret, CLIENT_CREDENTIAL):
        assert secret not in page

    path_filter = browser.find_element(By.ID, "filter-path")
    await asyncio.to_thread(path_filter.send_keys, "no-such-path")
    await until(browser, lambda b: not row.is_displayed())
    await asyncio.to_thread(path_filter.clear)
    await asyncio.to_thread(path_filter.send_keys, "probe=browser")
    await until(browser, lambda b: row.is_displayed())
    status = Select(browser.find_element(By.ID, "filter-status"))
    await asyncio.to_thread(status.select_by_value, "5xx")
    await until(browser, lambda b: not row.is_displayed())
    await asyncio.to_thread(status.select_by_value, "2xx")
    await until(browser, lambda b: row.is_displayed())

    export = browser.find_element(By.ID, "export")
    assert export.get_attribute("href") == (
        demo.url + "/_proxy/exchanges.har?status=2xx&path=probe%3Dbrowser"
    )
    await asyncio.to_thread(export.click)
    har_file = await until(browser, lambda b: next(downloads.glob("*.har"), False))
    assert isinstance(har_file, Path)
    text = har_file.read_text(encoding="utf-8")
    (entry,) = json.loads(text)["log"]["entries"]
    assert entry["request"]["url"].endswith(PROBE)
    assert entry["response"]["status"] == 200
    for secret in (demo.token, demo.secret, CLIENT_CREDENTIAL):
        assert secret not in text

    if screenshot := os.environ.get("INSPECTOR_SCREENSHOT"):
        await take_screenshot(browser, demo, Path(screenshot))


async def take_screenshot(browser: WebDriver, demo: Demo, path: Path) -> None:
    """The README's picture: a short curl session through the demo, one exchange opened."""
    await asyncio.to_thread(browser.get, demo.url + "/_proxy/")
    base, json_type = demo.url + API, "Content-Type: application/json"
    task = {"displayName": "invoice", "externalId": "inv-1", "context": {"url": DOCUMENT}}
    await curl("-X", "POST", base + "/sdtask/process", "-H", json_type, "-d", json.dumps(task))
    for _ in range(2):
        await curl(base + "/sdtask/status?taskId=1001")
    batch = json.dumps({"displayName": "march"})
    await curl("-X", "POST", base + "/sdbatch", "-H", json_type, "-d", batch)
    await curl("-o", "/dev/null", "-w", "%{http_code}", base + "/sdbatch?batchId=999", check=False)
    row = await until(browser, row_for(f"{API}/sdtask/process"))
    assert isinstance(row, WebElement)
    await until(browser, row_for(f"{API}/sdbatch?batchId=999"))
    await asyncio.to_thread(row.click)
    await until(browser, lambda b: header_value(b, "h-upstreamRequest", "Authorization"))
    await asyncio.to_thread(browser.save_screenshot, str(path))
