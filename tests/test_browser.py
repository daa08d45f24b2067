"""The headless-Chromium page check (tests/browser.py) against small pages written here.

The report tests trust this harness to notice console errors and broken images, so each kind of failure it must
catch has a page that exhibits it: if the harness stopped seeing one, its test here fails.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # browser.py, whether or not tests/ is a package

from browser import check_page, find_chromium  # noqa: E402

if find_chromium() is None:
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: `make test` installs chromium (apt-get install chromium)",
                    pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium): no headless browser checks",
                allow_module_level=True)

TIMEOUT = 60  # generous for a loaded CI machine; each check takes about a second here
RED, BLUE = (200, 40, 40), (30, 90, 210)


def png_bytes(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    """A real PNG, so that the browser has to decode something (a 0-byte file would be 'broken' for other reasons)."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def write_page(folder: Path, body: str, title: str = "Test page") -> str:
    """``folder/index.html`` with ``body``; returns its file:// URL, as a report opened from disk would have."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "index.html"
    page.write_text(f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
                    f"<body>\n{body}\n</body></html>\n", encoding="utf-8")
    return page.as_uri()


def has_color(image: Image.Image, color: tuple[int, int, int], tolerance: int = 6) -> bool:
    """Whether some pixel is (nearly) ``color``: the screenshot really shows the images, not a blank page."""
    colors = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return any(all(abs(a - b) <= tolerance for a, b in zip(rgb, color)) for _, rgb in colors)


def test_good_page_has_no_errors_and_all_images(tmp_path):
    """A relative PNG and a data: URI PNG both load; nothing is reported; the full-page screenshot is saved."""
    (tmp_path / "report" / "img").mkdir(parents=True)
    (tmp_path / "report" / "img" / "red.png").write_bytes(png_bytes((120, 80), RED))
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes((64, 48), BLUE)).decode()
    url = write_page(tmp_path / "report", f"<h1>Sweep report</h1><img src='img/red.png' alt='red'>"
                     f"<img src='{data_uri}' alt='blue'><div style='height:1500px'></div><p>the end</p>"
                     "<script>console.log('just a log'); console.warn('just a warning');</script>",
                     title="Sweep report ✓")
    shot = tmp_path / "artifacts" / "report.png"

    result = check_page(url, screenshot=shot, timeout=TIMEOUT)

    assert result.console_errors == []
    assert result.title == "Sweep report ✓"
    assert "Sweep report" in result.text and "the end" in result.text
    assert [(img["naturalWidth"], img["naturalHeight"]) for img in result.images] == [(120, 80), (64, 48)]
    assert all(img["complete"] for img in result.images) and result.broken_images == []
    assert result.images[0]["src"].endswith("/report/img/red.png")
    assert result.images[1]["src"].startswith("data:image/png;base64,") and len(result.images[1]["src"]) <= 200
    assert result.screenshot == shot and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 2_000
    with Image.open(shot) as image:
        assert image.width >= 1000 and image.height >= 1500  # the whole page, not only the 1400x1000 window
        assert has_color(image, RED) and has_color(image, BLUE)


def test_lazy_image_far_below_the_fold_is_checked_and_in_the_screenshot(tmp_path):
    """A long report: its last (lazy) image is still loaded and checked, and the screenshot reaches the bottom.

    Without care Chromium leaves such an image unloaded (naturalWidth 0) and paints nothing beyond the window.
    """
    (tmp_path / "blue.png").write_bytes(png_bytes((200, 100), BLUE))
    url = write_page(tmp_path, "<div style='height:4000px'>top</div><img loading='lazy' src='blue.png'>"
                     "<div style='height:200px;background:rgb(40,200,40)'></div>")
    shot = tmp_path / "long.png"

    result = check_page(url, screenshot=shot, timeout=TIMEOUT)

    assert result.broken_images == [] and result.images[0]["naturalWidth"] == 200
    with Image.open(shot) as image:
        assert image.height >= 4300
        assert image.convert("RGB").getpixel((10, image.height - 100)) == (40, 200, 40)
        assert has_color(image, BLUE)


def test_missing_image_is_broken_and_logged(tmp_path):
    """A relative image that is not on disk: listed as broken, and its failed load is a console error."""
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "ok.png").write_bytes(png_bytes((10, 10), RED))
    url = write_page(tmp_path / "report", "<img src='ok.png'><img src='plots/missing.png'>")

    result = check_page(url, timeout=TIMEOUT)

    assert len(result.images) == 2
    assert [img["src"].rsplit("/", 1)[-1] for img in result.broken_images] == ["missing.png"]
    assert any("ERR_FILE_NOT_FOUND" in e and "missing.png" in e for e in result.console_errors), result.console_errors


@pytest.mark.parametrize(("script", "expected"), [
    ("console.error('boom')", "boom"),
    ("undefinedFunction()", "undefinedFunction is not defined"),
    ("window.addEventListener('load', () => { throw new Error('late failure'); })", "late failure"),
], ids=["console-error", "uncaught-exception", "exception-in-onload"])
def test_script_errors_are_reported(tmp_path, script, expected):
    """console.error calls and uncaught exceptions, during parsing or in the load handler, are console errors."""
    url = write_page(tmp_path, f"<p>text</p><script>{script}</script>")

    result = check_page(url, timeout=TIMEOUT)

    assert any(expected in e for e in result.console_errors), result.console_errors
    assert result.images == [] and result.text == "text"


def test_missing_page_is_an_error(tmp_path):
    """A report that was never written must not pass as an empty page."""
    with pytest.raises(RuntimeError, match="ERR_FILE_NOT_FOUND"):
        check_page((tmp_path / "index.html").as_uri(), timeout=TIMEOUT)


def fake_chromium(tmp_path: Path, script: str) -> str:
    """An executable standing in for a broken Chromium."""
    exe = tmp_path / "fake-chromium"
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(0o755)
    return str(exe)


def test_chromium_exiting_early_reports_its_stderr(tmp_path):
    exe = fake_chromium(tmp_path, "echo 'cannot open display: nope' >&2; exit 3")
    with pytest.raises(RuntimeError, match=r"(?s)code 3.*cannot open display"):
        check_page("about:blank", chromium=exe, timeout=TIMEOUT)


def test_hung_chromium_times_out(tmp_path):
    """A Chromium that never opens DevTools must not hang the session: a bounded TimeoutError naming the step."""
    exe = fake_chromium(tmp_path, "echo 'starting' >&2; sleep 120")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="DevTools URL"):
        check_page("about:blank", chromium=exe, timeout=1.5)
    assert time.monotonic() - start < 15
