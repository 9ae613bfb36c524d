"""`maker analyze TRACE --html`: one self-contained page, opened in a real headless browser.

The page must stand alone (no scripts, nothing fetched, figures inlined), so
it renders anywhere it is sent. The test opens it in Debian's Chromium (which
`.ci/run` installs), checks the browser logged no console error or failed
load, and looks at the screenshot: not blank, the size of a page of tables
and figures.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _http import run_maker

pytestmark = pytest.mark.timeout(120)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("report")
    trace = where / "hanoi8.jsonl"
    assert run_maker(
        "hanoi", "--disks", "8", "--model", "sim/hostile", "--k", "4", "--trace", str(trace), "--quiet", cwd=where
    ).returncode in (0, 1)
    done = run_maker("analyze", str(trace), "--html", str(where / "report.html"), cwd=where)
    assert done.returncode == 0, done.stderr
    return where / "report.html"


def test_the_report_is_one_self_contained_file(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 3
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images)
    for text in ("trace analysis", "votes per step", "cost"):
        assert text in page


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


def test_the_report_renders_in_a_real_browser_without_console_errors(report: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stderr
    assert ":CONSOLE" not in log and "Uncaught" not in log and "Failed to load resource" not in log
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1000
    ink = (pixels[..., :3].mean(axis=2) < 0.5).mean()  # share of dark pixels: text, lines, axes
    assert 0.005 < ink < 0.5, f"the screenshot looks blank or broken ({ink:.4f} dark)"
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert "trace analysis" in dom.stdout and dom.stdout.count("<img") >= 3
