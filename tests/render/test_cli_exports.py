"""CLI: every --format, --output, and models given as file.py:factory, package.module:factory, timm:NAME."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import shutil
from pathlib import Path

import pytest

from torchscan.cli import main

_MODEL_FILE = """
from torch import nn


def small():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


not_a_model = 42
"""


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(_MODEL_FILE, encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


FORMATS = ["table", "csv", "json", "dot", "html"] + (["svg"] if shutil.which("dot") else [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_to_a_file(fmt: str, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / f"out.{fmt}"
    status, out, err = _run(
        capsys, f"{model_file}:small", "--input-shape", "3", "8", "8", "--format", fmt, "--output", str(output)
    )
    assert status == 0 and out == ""
    assert err == ""  # stderr is not a terminal: no progress (tests/test_cli.py checks it on a terminal)
    text = output.read_text(encoding="utf-8")
    if fmt == "table":
        assert "Total params: 402" in text
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [row["name"] for row in rows] == ["0", "1", "2", "3"]
        assert sum(int(row["params"]) for row in rows) == 402
    elif fmt == "json":
        assert json.loads(text)["totals"]["params"] == 402
    elif fmt == "dot":
        assert text.startswith("digraph torchscan {") and text.count("label=") == 7  # graph + 4 rows + in/out
    elif fmt == "svg":
        assert "<svg" in text
    else:
        assert text.startswith("<!DOCTYPE html>") and 'id="layers"' in text


def test_stdout_depth_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torchvision")
    status, out, err = _run(capsys, "resnet18", "--format", "csv", "--max-depth", "1", "--quiet")
    assert status == 0 and err == ""
    assert [row["name"] for row in csv.DictReader(io.StringIO(out))][:5] == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
    ]
    status, out, _ = _run(capsys, "resnet18", "--format", "dot", "--max-depth", "1", "-q")
    assert status == 0 and out.count("label=") == 11 - 1 + 2 + 1  # depth-1 rows but flatten (folded), in/out, graph


def test_package_module_factory(model_file: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    package = model_file.parent / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(model_file, package / "nets.py")
    monkeypatch.syspath_prepend(str(model_file.parent))
    status, out, _ = _run(capsys, "userpkg.nets:small", "--input-shape", "3", "8", "8", "--format", "json", "-q")
    assert status == 0 and json.loads(out)["context"]["model"] == "Sequential"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{file}:missing", "has no attribute 'missing'"),
        ("{file}:not_a_model", "not a torch.nn.Module"),
        ("{dir}/nope.py:small", "no such file"),
        ("no_such_package_xyz.mod:small", "cannot import module 'no_such_package_xyz.mod'"),
        (":small", "expected timm:NAME"),
    ],
)
def test_bad_model_specs(spec: str, message: str, model_file: Path, capsys) -> None:
    status, _, err = _run(capsys, spec.format(file=model_file, dir=model_file.parent), "-q")
    assert status == 2 and message in err


def test_timm_models(capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("timm") is None:
        status, _, err = _run(capsys, "timm:resnet18", "-q")
        assert status == 2 and "pip install timm" in err
    else:
        status, out, _ = _run(capsys, "timm:resnet18", "--format", "json", "-q")
        assert status == 0 and json.loads(out)["totals"]["params"] > 0


def test_bad_depth_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["resnet18", "--max-depth", "-1"])
    assert "--max-depth must be 0 (totals only) or more" in capsys.readouterr().err
