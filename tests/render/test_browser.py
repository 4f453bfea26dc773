"""The HTML report in a real browser: headless Chromium renders the table and the graph.

Skipped when Chromium is not installed (CI installs Debian's ``chromium`` and ``graphviz``).
Run as a script to refresh the README screenshot::

    python tests/render/test_browser.py docs/resnet18_report.png
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1600, 1000)

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def run_chromium(page: Path, *flags: str, profile: Path, timeout: float = 120.0) -> str:
    """Headless Chromium on ``page`` with a fresh profile and no background traffic; returns stdout."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *flags,
        page.resolve().as_uri(),
    ]
    env = {**os.environ, "HOME": str(profile)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(page: Path, png: Path) -> None:
    """A ``WINDOW``-sized screenshot of ``page`` saved to ``png``."""
    with tempfile.TemporaryDirectory() as profile:
        run_chromium(page, f"--screenshot={png.resolve()}", profile=Path(profile))
    assert png.is_file(), "chromium wrote no screenshot"


def _resnet18_html(path: Path) -> Path:
    import torchvision

    import torchscan

    report = torchscan.crawl_module(torchvision.models.resnet18().eval(), (3, 224, 224))
    report.to_html(path)
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torchvision")
    return _resnet18_html(tmp_path_factory.mktemp("html") / "resnet18.html")


@needs_chromium
def test_dom_has_the_table_and_the_graph(page: Path, tmp_path: Path) -> None:
    dom = run_chromium(page, "--dump-dom", profile=tmp_path / "profile")
    assert re.search(r'<html lang="en" class="js">', dom), "the page script did not run to its end"
    rows = re.findall(r'<tr class="(?:parent|leaf)" data-name="[^"]*" data-parent="[^"]*" data-depth="(\d)"[^>]*>', dom)
    assert len(rows) == 76  # every ResNet-18 row
    hidden = re.findall(r'data-depth="(\d)" data-order="\d+" style="display: none;"', dom)
    assert hidden and all(int(depth) > 2 for depth in hidden)  # folded below depth 2 by the script
    assert len(hidden) == sum(int(depth) > 2 for depth in rows)
    graph = dom[dom.index('id="graph"') :]
    if shutil.which("dot"):
        assert "<svg" in graph and graph.count('class="node"') == 15 + 2  # depth-2 rows + input/output
    else:
        assert graph.count('class="gnode"') == 15 + 2


def _rgb(data: bytes) -> list[tuple[int, int, int]]:
    return list(zip(data[0::3], data[1::3], data[2::3], strict=True))


@needs_chromium
def test_screenshot_is_not_blank(page: Path, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")  # Pillow comes with torchvision
    png = tmp_path / "report.png"
    screenshot(page, png)
    with image_module.open(png) as opened:
        image = opened.convert("RGB")
    assert image.size == WINDOW
    pixels = _rgb(image.tobytes())
    colours = Counter(pixels)
    count = colours.most_common(1)[0][1]  # the background
    assert len(colours) > 200 and count < 0.9 * len(pixels), "the page looks blank"
    width, height = image.size
    graph_area = _rgb(image.crop((int(width * 0.66), 0, width, height)).tobytes())
    warm = sum(1 for r, g, b in graph_area if r > 200 and 60 < g < 200 and b < 120)
    assert warm > 1000, "no coloured graph nodes in the right-hand pane"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/resnet18_report.png")
    with tempfile.TemporaryDirectory() as folder:
        screenshot(_resnet18_html(Path(folder) / "resnet18.html"), target)
    print(f"wrote {target}")
