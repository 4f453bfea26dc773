"""Per-row output bytes: a functional row reads its own fx node (``Row.node``), whatever its name."""

from __future__ import annotations

import torchvision

from torchscan import crawl_module
from torchscan.passes.memory import output_bytes
from torchscan.records import RECORD


def test_functional_rows_read_their_node() -> None:
    report = crawl_module(torchvision.models.resnet18().eval(), (3, 64, 64))
    for row in report.rows:
        if row.kind in ("function", "method"):
            assert row.node is not None
            assert row.output_bytes == output_bytes(report.records.nodes[row.node][RECORD])
    assert report.row("layer1.0.add").output_bytes == 64 * 16 * 16 * 4  # float32, batch 1
    assert report.row("layer4.1.add").output_bytes == 512 * 2 * 2 * 4
