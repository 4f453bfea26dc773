"""``torchscan zoo``: rows to -o, the table to --table or stdout, a rerun resumes, an earlier sweep
renders without SPECs, mistakes are one line and exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.zoo.conftest import GOOD, Sweep, spec
from torchscan.cli import main
from torchscan.zoo import read_rows, render_markdown


def test_a_sweep_writes_rows_and_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output, table = tmp_path / "rows.csv", tmp_path / "table.md"
    argv = ["zoo", spec("cnn"), "--input", "3x16x16", "--size", "16", "24", "-o", str(output), "--table", str(table)]
    assert main([*argv, "--quiet", "--memory-limit", "1GiB"]) == 0
    rows = read_rows(output)
    assert [(row.spec, row.input, row.status) for row in rows] == [
        (spec("cnn"), "1x3x16x16", "ok"),
        (spec("cnn"), "1x3x24x24", "ok"),
    ]
    assert table.read_text() == render_markdown(rows)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("torchscan zoo: 2 rows: 2 ok (2 complete), 0 failed in ")


def test_a_rerun_resumes_and_renders_without_work(
    sweep: Sweep, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "copy.csv"
    shutil.copy(sweep.output, output)
    before = output.read_text()
    specs = [f"{spec(name)} {GOOD[name][0]}" for name in ("mlp", "tokens")]
    assert main(["zoo", *specs, "-o", str(output), "--table", "-", "--columns", "model,params,macs"]) == 0
    assert output.read_text() == before  # both rows were in the file: nothing ran, nothing written
    shown = [row for row in sweep.rows if row.spec in (spec("mlp"), spec("tokens"))]
    assert capsys.readouterr().out == render_markdown(shown, "model,params,macs")
    assert main(["zoo", "-o", str(output), "--table", str(tmp_path / "all.html")]) == 0
    page = (tmp_path / "all.html").read_text()
    assert page.count("<tr class=") == len(sweep.rows) and "failed (Timeout)" in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resnet18", "-o", "rows.txt"], "give a results file ending in .csv, .jsonl"),
        (["resnet18", "--table", "t.pdf"], "--table t.pdf: give a .md or .html file"),
        ([], "give a SPEC to analyse"),
        (["no_such_model_*"], "pattern 'no_such_model_*' matches no model"),
        (["resnet18", "--columns", "nope"], "unknown column(s) nope"),
        (["resnet18", "--input", "3xZ"], "input '3xZ'"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["zoo", *argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchscan: error: ") and message in error and error.count("\n") == 1


def test_help_lists_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["zoo", "--help"])
    text = capsys.readouterr().out
    assert "--dask ADDRESS" in text and "torchscan zoo 'timm:*'" in text
