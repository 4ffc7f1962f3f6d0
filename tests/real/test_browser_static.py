"""Headless Chromium loads a page rendered by the app whose CSS, JS and image come from
``--static``: what the browser fetched (porch's access log), what it drew (the
screenshot's pixels) and what its JavaScript did (``--dump-dom``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.programs import require_program
from tests.real.conftest import StartPorch
from tests.real.png_image import decode_png, encode_png

pytestmark = pytest.mark.timeout(60)

BACKGROUND = (0, 128, 0)  # the CSS body colour
IMAGE_COLOUR = (255, 0, 0)  # the PNG's only colour, drawn at 200x100 CSS pixels
JS_BOX_COLOUR = (0, 0, 255)  # the 100x50 box the script appends
WIDTH, HEIGHT = 800, 600
ASSETS = ("/assets/site.css", "/assets/site.js", "/assets/logo.png")

PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>rendered by the app</title>
<link rel="stylesheet" href="/assets/site.css">
<script src="/assets/site.js" defer></script>
</head>
<body><img id="logo" src="/assets/logo.png" alt="logo"></body>
</html>
"""
CSS = """html, body { margin: 0; height: 100%; background: rgb(0, 128, 0); }
#logo { position: absolute; left: 50px; top: 50px; width: 200px; height: 100px; }
#made-by-js { position: absolute; left: 400px; top: 300px; width: 100px; height: 50px;
              background: rgb(0, 0, 255); }
"""
JS = """document.title = "script ran";
const box = document.createElement("div");
box.id = "made-by-js";
document.body.appendChild(box);
"""
APP = f"""
PAGE = {PAGE.encode()!r}


def app(environ, start_response):
    if environ["PATH_INFO"] != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [PAGE]
"""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # running as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-device-scale-factor=1",  # one screenshot pixel per CSS pixel
    "--force-color-profile=srgb",  # colours drawn as written
    f"--window-size={WIDTH},{HEIGHT}",
)
REQUEST_LINE = re.compile(r'"GET (\S+) HTTP/1\.[01]" (\d{3}) .*"([^"]*)"$')


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium", "chromium")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The app file and its asset directory; returns the asset directory."""
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "site.css").write_text(CSS)
    (assets / "site.js").write_text(JS)
    (assets / "logo.png").write_bytes(encode_png(20, 10, IMAGE_COLOUR))
    (tmp_path / "page_app.py").write_text(APP)
    return assets


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    """Run Chromium to completion in its own session; its stdout. Leftover helper
    processes of that session (and a hung browser) are killed by process group."""
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"chromium did not finish in 40s:\n{err[-2000:]}") from None
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert process.returncode == 0, f"chromium exited with {process.returncode}:\n{err[-2000:]}"
    return out


def fetched(access_log: Path) -> list[tuple[str, int, str]]:
    """(path, status, user agent) of each GET in porch's access log."""
    hits = []
    for line in access_log.read_text().splitlines():
        match = REQUEST_LINE.search(line)
        if match:
            hits.append((match.group(1), int(match.group(2)), match.group(3)))
    return hits


def test_chromium_renders_a_page_whose_assets_come_from_static(
    start_porch: StartPorch, site: Path, chromium: str, tmp_path: Path
) -> None:
    access_log = tmp_path / "access.log"
    server = start_porch(
        str(tmp_path / "page_app.py"),
        "-b",
        "127.0.0.1:0",
        "--static",
        f"/assets={site}",
        "--access-logfile",
        str(access_log),
    )
    shot = tmp_path / "shot.png"
    run_chromium(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", server.url + "/")

    hits = fetched(access_log)
    for path in ("/", *ASSETS):
        statuses = [status for hit_path, status, _ in hits if hit_path == path]
        assert statuses == [200], f"{path}: {statuses}; the log has {hits}"
    assert all("HeadlessChrome" in agent for _, _, agent in hits), hits

    image = decode_png(shot.read_bytes())
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    counts = image.colour_counts()
    colour, count = counts.most_common(1)[0]
    assert colour == BACKGROUND and count > WIDTH * HEIGHT // 2, counts.most_common(5)
    # The image (20x10 drawn at 200x100) and the script's box (100x50), pixel for pixel.
    assert abs(counts[IMAGE_COLOUR] - 200 * 100) <= 400, counts.most_common(5)
    assert abs(counts[JS_BOX_COLOUR] - 100 * 50) <= 200, counts.most_common(5)
    assert image.pixel(150, 100) == IMAGE_COLOUR
    assert image.pixel(450, 325) == JS_BOX_COLOUR
    assert image.pixel(5, 5) == image.pixel(700, 500) == BACKGROUND

    dom = run_chromium(chromium, tmp_path / "profile-dom", "--dump-dom", server.url + "/")
    assert "<title>script ran</title>" in dom, dom
    assert '<div id="made-by-js"></div>' in dom, dom
    assert len([hit for hit in fetched(access_log) if hit[0] == "/assets/site.js"]) == 2
