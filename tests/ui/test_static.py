"""The dashboard's files: served with the right content types and a strict CSP, nothing from
outside the controller's origin, no path escapes. (No browser needed.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.routes.ui import CONTENT_TYPES
from tests.conftest import REPO

UI = REPO / "controller" / "api" / "ui"


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/index.html", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ],
)
def test_files_are_served_with_their_type_and_a_strict_csp(client: TestClient, path: str, media: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_every_module_the_page_imports_is_served(client: TestClient) -> None:
    for f in UI.iterdir():
        assert f.suffix in CONTENT_TYPES, f"{f.name} would not be served"
        assert client.get(f"/ui/{f.name}").content == f.read_bytes()
    for js in UI.glob("*.js"):
        for name in re.findall(r'from "\./([^"]+)"', js.read_text()):
            assert (UI / name).is_file(), f"{js.name} imports missing {name}"


@pytest.mark.parametrize(
    "path", ["/ui/nope.js", "/ui/..%2Fapp.py", "/ui/%2e%2e", "/ui/app.py", "/ui/.hidden.js"]
)
def test_unknown_files_are_404_problems(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_nothing_is_loaded_from_another_origin() -> None:
    for f in UI.iterdir():
        text = f.read_text()
        # The SVG namespace is an identifier, not a fetch (in the icon and in dom.js's svg()).
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
            '"http://www.w3.org/2000/svg"', ""
        )
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), (
            f"{f.name} refers to another origin"
        )
        assert "innerHTML" not in text and "eval(" not in text, f"{f.name} builds code or markup from strings"


def test_inline_scripts_and_styles_are_absent(client: TestClient) -> None:
    html = client.get("/ui").text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script> would be blocked by the CSP"
    assert "<style" not in html and " style=" not in html


def test_the_ui_ships_as_package_data() -> None:
    text = (REPO / "pyproject.toml").read_text()
    for suffix in {Path(f).suffix for f in UI.iterdir()}:
        assert f'"api/ui/*{suffix}"' in text
