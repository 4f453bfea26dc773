"""The report's receptive-field columns on literal models; exported to dicts, the table and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.passes.receptive.helpers import Unknown, rf_report
from torchscan import crawl_module
from torchscan.cli import main
from torchscan.passes.receptive import Marker, receptive_fields
from torchscan.records import RECORD


class PerDim(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Conv2d(2, 2, (1, 7), stride=(1, 2), padding=(0, 3))
        self.tall = nn.Conv2d(2, 2, (3, 1), padding=(1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tall(self.wide(x))


class Shifted(nn.Module):
    """Two paths whose fields are misaligned: [i - 1, i + 1] and [i, i + 2]."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(1, 1, 3, padding=1)
        self.b = nn.Conv1d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x)[..., :-2] + self.b(x)


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.mlp = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = self.mlp(tokens)
        scores = (tokens @ tokens.transpose(1, 2)).softmax(-1)
        return scores @ tokens


class Shuffle(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = F.max_pool2d(x, 2)
        return x.view(n, 2, c // 2, h // 2, w // 2).transpose(1, 2).reshape(n, c, h // 2, w // 2)


@pytest.mark.parametrize(
    ("model", "shape", "row", "size", "stride", "padding"),
    [
        (nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=1) for _ in range(3))), (1, 16, 16), "2", (7, 7), (1, 1), (3, 3)),
        (PerDim(), (2, 20, 20), "wide", (1, 7), (1, 2), (0, 3)),
        (PerDim(), (2, 20, 20), "tall", (3, 7), (1, 2), (1, 3)),
        (nn.Conv1d(1, 1, 3, dilation=2, padding=2), (1, 16), "", None, None, None),
        (nn.Sequential(nn.Conv3d(1, 1, (1, 3, 5), stride=(1, 1, 2))), (1, 8, 8, 8), "0",
         (1, 3, 5), (1, 1, 2), (0, 0, 0)),
        (nn.Sequential(nn.Conv2d(1, 1, 3, 2, 1), nn.ConvTranspose2d(1, 1, 4, 2, 1)), (1, 8, 8), "1",
         (5, 5), (1, 1), (3, 3)),
        (nn.Sequential(nn.Identity(), nn.Upsample(scale_factor=2)), (1, 4, 4), "1", (1, 1), (0.5, 0.5), (0, 0)),
        (Shifted(), (1, 16), "add", (4,), (1,), (1,)),
        (Tokens(), (3, 16, 16), "mlp", (4, 4), (4, 4), (0, 0)),
        (Tokens(), (3, 16, 16), "matmul_1", "global", "global", "global"),
        (Shuffle(), (4, 8, 8), "reshape", (2, 2), (2, 2), (0, 0)),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2)), (1, 8, 8), "1",
         "global", "global", "global"),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d((3, 1))), (1, 9, 8), "1", (5, 8), (7 / 3, 6), (0, 0)),
        (nn.Sequential(nn.AdaptiveAvgPool2d((3, 4))), (1, 9, 8), "0", (3, 2), (3, 2), (0, 0)),
        (Unknown(), (1, 8, 8), "conv", "unknown", "unknown", "unknown"),
    ],
)  # fmt: skip
def test_rows(model: nn.Module, shape: Sequence[int], row: str, size: Any, stride: Any, padding: Any) -> None:
    report = rf_report(model, shape)
    if not row:  # a bare leaf model: its only row
        fields = receptive_fields(report.records)
        (node,) = [name for name, data in report.records.nodes(data=True) if data[RECORD].op == "call_module"]
        summary = fields.of(node)
        assert not isinstance(summary, Marker) and summary is not None
        assert [f.size for f in summary] == [5]
        return
    found = report.row(row)
    assert (found.receptive_field, found.effective_stride, found.effective_padding) == (size, stride, padding)


def test_off_by_default_and_exported() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1))
    plain = crawl_module(model, (1, 8, 8))
    assert plain.row("0").receptive_field is None
    layers = rf_report(model, (1, 8, 8)).to_dict()["layers"]
    assert layers[0]["receptive_field"] == [3, 3]
    assert layers[0]["effective_stride"] == [1, 1]
    assert layers[0]["effective_padding"] == [0, 0]
    assert layers[1]["receptive_field"] == "global"


def test_table_column_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resnet18", "--receptive-field", "--max-depth", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "Receptive field" in text
    assert "435x435" in text


def test_fraction_strides_are_exported_as_numbers() -> None:
    report = rf_report(nn.Sequential(nn.Upsample(scale_factor=2)), (1, 4))
    assert report.row("0").effective_stride == (0.5,)
    assert Fraction(1, 2) == report.row("0").effective_stride[0]


def test_functional_rows_inside_modules_read_their_node() -> None:
    """``layer1.0.add`` is not an fx node name: the row's receptive field comes from ``Row.node``."""
    import torchvision

    report = crawl_module(torchvision.models.resnet18().eval(), (3, 64, 64), receptive_field=True)
    fields = receptive_fields(report.records)
    for block in ("layer1.0", "layer2.0", "layer4.1"):
        add, norm = report.row(f"{block}.add"), report.row(f"{block}.bn2")
        assert add.receptive_field is not None and add.node is not None
        assert add.receptive_field == norm.receptive_field  # the residual's field is the larger branch's
        assert add.receptive_field == tuple(f.size for f in fields.of(add.node))  # type: ignore[union-attr]
