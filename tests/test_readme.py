"""The README's examples are run: its Python blocks execute and the summary it shows is the real one."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_python_blocks_run_and_the_shown_table_is_true(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("dot") is None:
        pytest.skip("the export example renders SVG with Graphviz's dot")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    outputs = []
    for block in BLOCKS:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(block, "README.md", "exec"), namespace)
        outputs.append(buffer.getvalue())
    for block, output in zip(BLOCKS, outputs, strict=True):  # `print(...)  # shown` lines show the output
        lines = output.splitlines()
        for shown in re.findall(r"^print\(.*\)\s+# (.+)$", block, re.M):
            assert any(line and shown.startswith(line) for line in lines), (shown, lines)
    first = outputs[0]
    assert first.rstrip().splitlines()[-1] == "1820672000 True"
    shown = README.split("```text\n", 1)[1].split("```", 1)[0]
    for line in shown.strip().splitlines():
        assert line in first, line
    assert (tmp_path / "resnet18.html").exists()


def test_the_shown_end_of_a_measured_summary_is_true(capsys: pytest.CaptureFixture[str]) -> None:
    """The end the README shows for ``torchscan resnet18 --max-depth 1 --measure`` on a machine without CUDA
    is what the command prints (its memory lines: the training estimate's figures move with the memory model)."""
    import torch

    from torchscan.cli import main

    if torch.cuda.is_available():
        pytest.skip("the shown end is the one printed without CUDA")
    marker = "`torchscan resnet18 --max-depth 1 --measure` on a machine without CUDA ends with"
    shown = README.split(marker, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    assert main(["resnet18", "--max-depth", "1", "--measure"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for line in shown.strip().splitlines():
        assert line in printed, line
