"""The sweep: failures isolated with their reason, every other row what ``crawl_module`` gives in this
process, rows written as they come, a stopped sweep resumed to the uninterrupted result."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from tests.zoo.conftest import BAD, GOOD, MEMORY_LIMIT, TIME_LIMIT, Sweep, lines, spec
from torchscan import crawl_module, zoo
from torchscan.errors import CaptureError, TorchscanError
from torchscan.loader import load_model
from torchscan.report import Report


def _direct(name: str) -> Report:
    """``crawl_module`` here, as a user would call it: meta weights (cast to a float16 input's dtype), real
    ones where only a real forward can capture the model."""
    kwargs = GOOD[name][1]
    dtype = kwargs.get("dtype")

    def build(meta: bool) -> torch.nn.Module:
        model = load_model(spec(name), meta=meta)
        return model.to(dtype) if isinstance(dtype, torch.dtype) and dtype.is_floating_point else model

    try:
        return crawl_module(build(meta=True), **kwargs)
    except CaptureError:
        return crawl_module(build(meta=False), **kwargs)


def test_failures_are_rows_with_their_reason(sweep: Sweep) -> None:
    by_spec = {row.spec: row for row in sweep.rows}
    for name, (error_type, message) in BAD.items():
        row = by_spec[spec(name)]
        assert (row.status, row.error_type) == ("failed", error_type), row
        assert message in (row.error or ""), row
        assert row.params is None and row.flops is None and row.analysis_seconds is None
    assert "string_at" in by_spec[spec("segfault")].error  # where it crashed: faulthandler's innermost frame


def test_every_other_row_equals_crawl_module_here(sweep: Sweep) -> None:
    by_spec = {row.spec: row for row in sweep.rows}
    for name in GOOD:
        row, report = by_spec[spec(name)], _direct(name)
        memory = report.memory
        assert memory is not None
        training = {estimate.optimizer: estimate.peak_bytes for estimate in memory.training}
        assert row.status == "ok", row
        assert row.model == report.context.model
        assert (row.params, row.flops, row.macs, row.dmas) == (
            report.totals.params,
            report.totals.flops,
            report.totals.macs,
            report.totals.dmas,
        ), name
        assert (row.complete, row.unknown_ops) == (report.totals.complete, report.totals.unknown_ops)
        assert row.model_bytes == report.totals.model_bytes
        assert row.activation_peak_bytes == memory.activation_peak_bytes
        assert (row.train_peak_sgd_bytes, row.train_peak_sgd_momentum_bytes) == (
            training["sgd"],
            training["sgd_momentum"],
        )
        assert (row.train_peak_adam_bytes, row.train_peak_adamw_bytes) == (training["adam"], training["adamw"])
        assert (row.capture, row.diagnostics) == (report.context.capture, len(report.diagnostics))
        assert row.error_type is None and row.error is None
        assert row.analysis_seconds is not None and row.analysis_seconds > 0
    assert by_spec[spec("value_branch")].capture == "real-forward"  # built again on real weights
    assert by_spec[spec("unknown")].complete is False
    assert by_spec[spec("two_inputs")].input == "1x3x16x16, 1x7:int64"


def test_rows_come_in_spec_order_and_the_file_holds_them_once(sweep: Sweep) -> None:
    assert [row.spec for row in sweep.rows] == [spec(name) for name in [*GOOD, *BAD]]
    written = zoo.read_rows(sweep.output)
    assert len(written) == len(sweep.rows) == len({row.key for row in written})
    assert sorted(written, key=lambda row: row.key) == sorted(sweep.rows, key=lambda row: row.key)


def test_a_stopped_sweep_resumes_to_the_uninterrupted_result(sweep: Sweep, tmp_path: Path) -> None:
    names = ["mlp", "unknown", "segfault"]
    output = tmp_path / "resumed.jsonl"
    expected = sorted((row for row in sweep.rows if row.spec in {spec(name) for name in names}), key=lambda r: r.key)
    first = []
    rows = zoo.iter_rows(lines(names), output=output, jobs=2, time_limit=TIME_LIMIT, memory_limit=MEMORY_LIMIT)
    for row in rows:
        first.append(row)
        if len(first) == 2:
            break
    rows.close()  # stop: queued jobs cancelled, running workers killed, nothing more written
    assert sorted(zoo.read_rows(output), key=lambda r: r.key) == sorted(first, key=lambda r: r.key)
    again = zoo.run(lines(names), output=output, jobs=2, time_limit=TIME_LIMIT, memory_limit=MEMORY_LIMIT)
    written = zoo.read_rows(output)
    assert len(written) == len({row.key for row in written}) == len(names)  # no duplicates
    assert sorted(written, key=lambda r: r.key) == expected
    assert sorted(again, key=lambda r: r.key) == expected
    resumed = list(zoo.iter_rows(lines(names), output=output, memory_limit=MEMORY_LIMIT))
    assert resumed == []  # everything is in the file: nothing runs


def test_bad_arguments_raise_before_any_work() -> None:
    with pytest.raises(ValueError, match="jobs"):
        zoo.run(lines(["mlp"]), jobs=0)
    threads = threading.active_count()
    with pytest.raises(TorchscanError, match="matches no model"):
        zoo.run(["no_such_model_*"])
    assert threading.active_count() == threads
