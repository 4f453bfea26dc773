"""The HTML report in a real browser: headless Chromium renders the table, the memory section and the
graph, with no horizontal scroll on a 1400 px laptop screen.

Skipped when Chromium is not installed (CI installs Debian's ``chromium`` and ``graphviz``).
Run as a script to refresh the README screenshots (the HTML report on a 1400 px screen, and the
terminal table with ``columns="all"`` drawn as text in a ``<pre>``)::

    python tests/render/test_browser.py docs
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

import torchscan
from torchscan.render.table import render_table
from torchscan.render.units import format_bytes
from torchscan.report import Report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1800, 1000)
"""Wide enough for the table and the graph side by side."""
LAPTOP = (1400, 900)
"""A laptop screen: the panes stack, nothing may scroll sideways."""

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def run_chromium(
    page: Path, *flags: str, profile: Path, window: tuple[int, int] = WINDOW, timeout: float = 120.0
) -> str:
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
        f"--window-size={window[0]},{window[1]}",
        *flags,
        page.resolve().as_uri(),
    ]
    env = {**os.environ, "HOME": str(profile)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(page: Path, png: Path, window: tuple[int, int] = WINDOW) -> None:
    """A ``window``-sized screenshot of ``page`` saved to ``png``."""
    with tempfile.TemporaryDirectory() as profile:
        run_chromium(page, f"--screenshot={png.resolve()}", profile=Path(profile), window=window)
    assert png.is_file(), "chromium wrote no screenshot"


_PROBE = """<script>
(function(){var d=document.documentElement,out={page:[d.scrollWidth,d.clientWidth],boxes:[]};
document.querySelectorAll('.scroll,section.box').forEach(function(e){
  out.boxes.push([e.id||e.className,e.scrollWidth,e.clientWidth]);});
var p=document.createElement('pre');p.id='probe';p.textContent=JSON.stringify(out);document.body.appendChild(p);})();
</script>"""
"""Appended to a copy of a page: writes the page's and each box's scroll and client widths into the DOM."""


def widths(page: Path, window: tuple[int, int], profile: Path) -> dict[str, list]:
    """``{"page": [scrollWidth, clientWidth], "boxes": [[name, scrollWidth, clientWidth]…]}`` of ``page``
    laid out in ``window``, after its own script ran."""
    probed = page.with_name(page.stem + "_probe.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium(probed, "--dump-dom", profile=profile, window=window)
    match = re.search(r'<pre id="probe">([^<]*)</pre>', dom)
    assert match, "the probe did not run"
    return json.loads(html.unescape(match.group(1)))


def terminal_page(text: str, path: Path) -> Path:
    """``text`` as a terminal shows it: light monospace on dark, one ``<pre>``, written to ``path``."""
    path.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>'
        "body{margin:0;background:#1e1e1e}"
        "pre{margin:0;padding:14px 16px;color:#e6e6e6;font:13px/1.3 'DejaVu Sans Mono',monospace;display:inline-block}"
        f"</style></head><body><pre>{html.escape(text)}</pre></body></html>",
        encoding="utf-8",
    )
    return path


def _resnet18_report() -> Report:
    import torchvision

    return torchscan.crawl_module(torchvision.models.resnet18().eval(), (3, 224, 224))


class AVeryLongModuleClassNameThatAUserMightWriteForAnAttentionBlock(nn.Module):
    def __init__(self, depth: int) -> None:
        super().__init__()
        self.projection_of_the_queries_keys_and_values_into_heads = nn.Linear(16, 16)
        self.inner_block_with_a_long_attribute_name = (
            AVeryLongModuleClassNameThatAUserMightWriteForAnAttentionBlock(depth - 1) if depth else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner_block_with_a_long_attribute_name(self.projection_of_the_queries_keys_and_values_into_heads(x))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torchvision")
    path = tmp_path_factory.mktemp("html") / "resnet18.html"
    _resnet18_report().to_html(path)
    return path


@pytest.fixture(scope="module")
def long_names_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten nested blocks with long class and attribute names, shown unfolded."""
    report = torchscan.crawl_module(AVeryLongModuleClassNameThatAUserMightWriteForAnAttentionBlock(10), (7, 16))
    path = tmp_path_factory.mktemp("html") / "long.html"
    report.to_html(path, table_depth=report.max_depth)
    return path


@needs_chromium
def test_dom_has_the_table_and_the_graph(page: Path, tmp_path: Path) -> None:
    dom = run_chromium(page, "--dump-dom", profile=tmp_path / "profile")
    assert re.search(r'<html lang="en" class="js">', dom), "the page script did not run to its end"
    rows = re.findall(r'<tr class="(?:parent|leaf)" data-name="[^"]*" data-parent="[^"]*" data-depth="(\d)"[^>]*>', dom)
    assert len(rows) == 75  # every ResNet-18 row but the folded bookkeeping one (the flatten)
    hidden = re.findall(r'data-depth="(\d)" data-order="\d+" style="display: none;"', dom)
    assert hidden and all(int(depth) > 2 for depth in hidden)  # folded below depth 2 by the script
    assert len(hidden) == sum(int(depth) > 2 for depth in rows)
    graph = dom[dom.index('id="graph"') :]
    nodes = 15 - 1 + 2  # depth-2 rows but the top-level flatten (a view: folded bookkeeping) + input/output
    if shutil.which("dot"):
        assert "<svg" in graph and graph.count('class="node"') == nodes
    else:
        assert graph.count('class="gnode"') == nodes


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


@needs_chromium
def test_dom_has_the_memory_section(page: Path, tmp_path: Path) -> None:
    memory = _resnet18_report().memory
    assert memory is not None
    dom = run_chromium(page, "--dump-dom", profile=tmp_path / "profile")
    section = dom[dom.index('id="memory"') : dom.index('id="diagnostics"')]
    assert (
        format_bytes(memory.activation_peak_bytes) in section and format_bytes(memory.inference_peak_bytes) in section
    )
    assert f"at '{memory.peak_node}'" in section
    training = section[section.index('id="training"') :]
    assert training.count("<tr>") == 1 + len(memory.training)  # the header, one per optimizer
    for estimate in memory.training:
        assert format_bytes(estimate.peak_bytes) in training


@needs_chromium
@pytest.mark.parametrize("which", ["page", "long_names_page"])
def test_no_horizontal_scroll_on_a_laptop_screen(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    page: Path = request.getfixturevalue(which)
    measured = widths(page, LAPTOP, tmp_path / "profile")
    scroll, client = measured["page"]
    assert client == LAPTOP[0] and scroll <= client, f"the page scrolls sideways: {scroll} > {client}"
    names = [name for name, _, _ in measured["boxes"]]
    assert {"memory", "summary", "graph", "scroll"} <= set(names)
    for name, scroll, client in measured["boxes"]:
        assert scroll <= client, f"{name} scrolls sideways at {LAPTOP[0]} px: {scroll} > {client}"


_SIZE = (
    "<script>var r=document.querySelector('pre').getBoundingClientRect();document.title=r.width+'x'+r.height</script>"
)
"""Writes the size of the page's ``<pre>`` into its title."""


def terminal_screenshot(text: str, png: Path) -> None:
    """``text`` as a terminal shows it, saved to ``png`` at the size of the text."""
    with tempfile.TemporaryDirectory() as folder:
        page = terminal_page(text, Path(folder) / "terminal.html")
        probed = page.with_name("probe.html")
        probed.write_text(page.read_text(encoding="utf-8").replace("</body>", _SIZE + "</body>"), encoding="utf-8")
        dom = run_chromium(probed, "--dump-dom", profile=Path(folder) / "profile", window=(3000, 3000))
        match = re.search(r"<title>([\d.]+)x([\d.]+)</title>", dom)
        assert match, "the probe did not run"
        size = (int(float(match.group(1))) + 1, int(float(match.group(2))) + 1)
        screenshot(page, png, window=size)


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    report = _resnet18_report()
    with tempfile.TemporaryDirectory() as work:
        report.to_html(Path(work) / "resnet18.html")
        screenshot(Path(work) / "resnet18.html", folder / "resnet18_report.png", window=(LAPTOP[0], 1000))
    terminal_screenshot(render_table(report, max_depth=2, columns="all", width=160), folder / "table_all.png")
    print(f"wrote {folder / 'resnet18_report.png'} and {folder / 'table_all.png'}")
