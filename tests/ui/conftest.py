"""Fixtures for the dashboard's browser tests: a real controller on loopback (uvicorn in a thread,
SQLite in a temp dir, no background loop so scheduling happens when a test says so) with every
cluster heartbeated; for the console views, a live embedded federation with its control loop,
agents, jobs, a failover and drill reports (tests/ui/console.py, built once per session); and the
system's Debian chromium driven by Playwright (never a downloaded browser).

Screenshots go to reports/ui/ (PNG); with YIWANG_DOC_SCREENSHOTS=DIR (``make screenshots``) the
ones docs/dashboard.md shows are also written there, as JPEG, at 1280 and 390 px."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.live import LiveController
from controller.service import Controller
from tests.conftest import REPO, need
from tests.ui import console as console_federation

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = REPO / "reports" / "ui"
DOC_SHOTS = Path(os.environ["YIWANG_DOC_SCREENSHOTS"]) if os.environ.get("YIWANG_DOC_SCREENSHOTS") else None
WIDE = {"width": 1280, "height": 860}
NARROW = {"width": 390, "height": 844}
WAIT_MS = 10_000
DATASET = {
    "id": "gd-census-sample",
    "owner": "guangdong",
    "size_bytes": 40_000_000_000,
    "classification": "general",
    "locations": ["prov-guangdong", "national-primary"],
}


class Live:
    """The controller under test: its base URL, an HTTP client and the Controller object."""

    def __init__(self, url: str, controller: Controller) -> None:
        self.url = url
        self.controller = controller
        self.http = httpx.Client(base_url=url, timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()


ADMIN_TOKEN = "ui-test-operator-token"


def _serve(tmp_path: Path, admin_token: str | None) -> Iterator[Live]:
    server = LiveController(
        tmp_path / "yiwang.db", name="ui-test-controller", background=False, admin_token=admin_token
    ).start()
    lv = Live(server.url, server.controller)
    if admin_token:
        lv.http.headers["Authorization"] = f"Bearer {admin_token}"
    try:
        for name in server.controller.registry.clusters:
            assert lv.http.post(f"/v1/agents/{name}/heartbeat").status_code == 200
        assert lv.http.post("/v1/datasets", json=DATASET).status_code == 201
        yield lv
    finally:
        lv.http.close()
        server.stop()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    yield from _serve(tmp_path, None)


@pytest.fixture
def live_with_token(tmp_path: Path) -> Iterator[Live]:
    """The API needs the operator token (YIWANG_ADMIN_TOKEN)."""
    yield from _serve(tmp_path, ADMIN_TOKEN)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    need(CHROMIUM.exists(), "Debian chromium is not installed (make system installs it as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install -e '.[dev]')")
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A browser tab on the dashboard that records console errors and CSP violations."""

    def __init__(
        self, browser: Any, live: Live | console_federation.Console, viewport: dict[str, int]
    ) -> None:
        self.context = browser.new_context(viewport=viewport, locale="en-GB")
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.live = live

    def _console(self, message: Any) -> None:
        # The browser logs every 4xx answer; the tests cause some on purpose (a 404 for a job not
        # yet decided, a 422 for a bad form). Anything else (a CSP refusal, a script error) counts.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def open(self, fragment: str = "") -> Any:
        self.page.goto(f"{self.live.url}/ui{fragment}")
        return self.page

    def shot(self, name: str, full_page: bool = True, doc: bool = False) -> Path:
        """reports/ui/<name>.png; ``doc``: also the viewport as docs' <name>.jpg (make screenshots)."""
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        if doc and DOC_SHOTS is not None:
            DOC_SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(DOC_SHOTS / f"{name}.jpg"), type="jpeg", quality=82)
        return path

    def set_token(self, token: str | None) -> None:
        """Use ``token`` from now on (what the Token form stores), or none."""
        if token:
            self.page.evaluate("t => sessionStorage.setItem('yiwang.token', t)", token)
        else:
            self.page.evaluate("sessionStorage.removeItem('yiwang.token')")

    def fits(self) -> None:
        """Nothing sticks out sideways: the page scrolls only vertically."""
        width = self.page.viewport_size["width"]
        assert self.page.evaluate("document.documentElement.scrollWidth") <= width

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, live: Live) -> Iterator[Page]:
    t = Page(browser, live, WIDE)
    try:
        yield t
    finally:
        t.close()
    assert not t.errors, f"the dashboard logged errors: {t.errors}"


@pytest.fixture
def narrow_tab(browser: Any, live: Live) -> Iterator[Page]:
    t = Page(browser, live, NARROW)
    try:
        yield t
    finally:
        t.close()
    assert not t.errors, f"the dashboard logged errors: {t.errors}"


@pytest.fixture(scope="session")
def console(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[console_federation.Console]:
    """The live embedded federation of the console tests (after ``browser``, so it is not built
    when the browser tests skip)."""
    c, server = console_federation.start(tmp_path_factory.mktemp("console"))
    try:
        yield c
    finally:
        console_federation.stop(c, server)


@pytest.fixture
def ctab(browser: Any, console: console_federation.Console) -> Iterator[Page]:
    t = Page(browser, console, WIDE)
    try:
        yield t
    finally:
        t.close()
    assert not t.errors, f"the dashboard logged errors: {t.errors}"


@pytest.fixture
def cnarrow(browser: Any, console: console_federation.Console) -> Iterator[Page]:
    t = Page(browser, console, NARROW)
    try:
        yield t
    finally:
        t.close()
    assert not t.errors, f"the dashboard logged errors: {t.errors}"
