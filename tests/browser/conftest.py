"""Debian's Chromium driven by Playwright (no browser download), and a live standalone hub per test."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from .live import LiveHub

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """Replaces pytest-jupyter's per-test event loop here: Playwright's sync API brings its own loop,
    and these tests start no Jupyter server (the hub runs on its own thread)."""


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No Jupyter server to clean up in the browser tests."""


@pytest.fixture(scope="package")  # one Chromium for the browser tests, closed before other packages run
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 1100})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveHub]:
    hub = LiveHub(str(tmp_path / "browser-hub.db"), batch_interval_ms=50)
    yield hub
    hub.stop()
