"""``torchscan --measure``: one real CUDA forward when a device is present, one line saying so otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from torchscan.cli import main

_MODEL_FILE = """
from torch import nn


def small():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
"""


@pytest.fixture
def spec(tmp_path: Path) -> str:
    path = tmp_path / "measure_models.py"
    path.write_text(_MODEL_FILE, encoding="utf-8")
    return f"{path}:small"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_measure_without_cuda_says_so_in_one_line(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, spec, "--input-shape", "3", "8", "8", "--measure", "-q")
    assert status == 0
    lines = [line for line in out.splitlines() if line.startswith("Measured")]
    assert lines == ["Measured: no CUDA device: memory not measured (static estimates only)"]
    assert err == ""

    status, out, err = _run(capsys, spec, "--input-shape", "3", "8", "8", "--measure", "--format", "json", "-q")
    assert status == 0
    measured = json.loads(out)["memory"]["measured"]
    assert measured["available"] is False and measured["activation_peak_bytes"] == 0
    assert err.strip() == "torchscan: no CUDA device: memory not measured (static estimates only)"


def test_no_measure_by_default(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, spec, "--input-shape", "3", "8", "8", "--format", "json", "-q")
    assert status == 0
    assert json.loads(out)["memory"]["measured"] is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measure_on_cuda(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, spec, "--input-shape", "3", "8", "8", "--batch-size", "4", "--measure", "-q")
    assert status == 0
    assert any(line.startswith("Measured on cuda") for line in out.splitlines())
