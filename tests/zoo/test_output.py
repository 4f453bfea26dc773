"""Results files: every format round-trips every field, rows are written as they come, a line cut short is
dropped, a key is never written twice, Parquet's journal is taken in after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torchscan.errors import TorchscanError
from torchscan.zoo.output import RowWriter, read_rows
from torchscan.zoo.records import ROW_FIELDS, ZooRow

ROWS = [
    ZooRow(
        "resnet18",
        "1x3x224x224",
        "ok",
        model="ResNet",
        params=11689512,
        flops=3640299392,
        macs=1820672000,
        dmas=1839311800,
        complete=True,
        unknown_ops=0,
        model_bytes=46796608,
        activation_peak_bytes=7024640,
        train_peak_sgd_bytes=1,
        train_peak_sgd_momentum_bytes=2,
        train_peak_adam_bytes=3,
        train_peak_adamw_bytes=4,
        capture="torch.fx",
        diagnostics=0,
        build_seconds=1.5,
        analysis_seconds=0.25,
    ),
    ZooRow("=cmd|' /C calc'!A0", "input_ids=1x128:int64", "failed", error_type="Timeout", error='-timeout, "quoted"'),
    ZooRow("m.py:f", "1x8", "ok", params=0, complete=False, unknown_ops=2, capture="real-forward", diagnostics=3),
]


def _same(a: list[ZooRow], b: list[ZooRow]) -> bool:
    """Equal in every field, the timing ones included."""
    return [row.to_dict() for row in a] == [row.to_dict() for row in b]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_format_round_trips_every_field(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"rows{suffix}"
    with RowWriter(path) as writer:
        for row in ROWS:
            assert writer.write(row)
    assert _same(read_rows(path), ROWS)
    with RowWriter(path) as writer:  # reopened: resumes, never duplicates
        assert writer.keys == {row.key for row in ROWS}
        assert not writer.write(ROWS[0])
        assert writer.write(ZooRow("new", "1x1", "ok"))
    assert [row.spec for row in read_rows(path)] == [*(row.spec for row in ROWS), "new"]


def test_csv_rows_are_on_disk_as_soon_as_written_and_formulas_are_quoted(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    writer = RowWriter(path)
    writer.write(ROWS[1])
    text = path.read_text()
    assert text.splitlines()[0] == ",".join(ROW_FIELDS)
    assert text.splitlines()[1].startswith("'=cmd")  # a spreadsheet shows it as text
    writer.close()


def test_a_line_cut_short_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    line = json.dumps(ROWS[0].to_dict())
    path.write_text(line + "\n" + line[: len(line) // 2])  # a writer killed mid-line
    with RowWriter(path) as writer:
        assert len(writer.rows) == 1
        writer.write(ROWS[2])
    assert _same(read_rows(path), [ROWS[0], ROWS[2]])


def test_parquet_journal_of_a_killed_sweep_is_taken_in(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "rows.parquet"
    with RowWriter(path) as writer:
        writer.write(ROWS[0])
    killed = RowWriter(path)
    killed.write(ROWS[1])  # never closed: the row is only in the journal
    assert path.with_name("rows.parquet.partial.jsonl").is_file()
    assert _same(read_rows(path), ROWS[:2])
    with RowWriter(path) as writer:
        writer.write(ROWS[2])
    assert _same(read_rows(path), ROWS)
    assert not path.with_name("rows.parquet.partial.jsonl").exists()


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    with pytest.raises(TorchscanError, match="pip install pyarrow"):
        RowWriter(tmp_path / "rows.parquet")


def test_bad_paths_are_refused(tmp_path: Path) -> None:
    for path, message in [
        (tmp_path / "rows.txt", "ending in"),
        (tmp_path / "missing" / "rows.csv", "does not exist"),
    ]:
        with pytest.raises(TorchscanError, match=message):
            RowWriter(path)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(TorchscanError, match="not a zoo sweep"):
        RowWriter(other)
