"""The memory lines of the text table: static peak and where, inference memory, the aligned training table."""

from __future__ import annotations

import dataclasses
import re

from torchscan.records import MemoryReport
from torchscan.render.memory import TRAINING_HEADERS, measured_line, memory_lines, peak_where, training_cells
from torchscan.render.units import format_bytes
from torchscan.report import Report


def _memory(report: Report) -> MemoryReport:
    assert report.memory is not None
    return report.memory


def test_lines_say_the_peak_where_and_the_inference_memory(resnet18_report: Report) -> None:
    memory = _memory(resnet18_report)
    lines = memory_lines(memory)
    assert lines[0].endswith(f"{format_bytes(memory.activation_peak_bytes)} at {peak_where(memory)}")
    assert memory.peak_node in lines[0]
    assert lines[1].endswith(format_bytes(memory.inference_peak_bytes))
    assert format_bytes(memory.saved_activation_bytes) in lines[2]
    assert measured_line(memory) is None and len(lines) == 3 + 1 + len(memory.training)


def test_training_table_is_aligned_and_holds_each_estimate(resnet18_report: Report) -> None:
    memory = _memory(resnet18_report)
    table = memory_lines(memory)[3:]
    assert re.split(r" {2,}", table[0].strip()) == list(TRAINING_HEADERS)
    cells = training_cells(memory)
    for line, estimate, row in zip(table[1:], memory.training, cells, strict=True):
        assert re.split(r" {2,}", line.strip()) == list(row)
        assert row[1:5] == (
            format_bytes(estimate.param_bytes + estimate.buffer_bytes),
            format_bytes(estimate.grad_bytes),
            format_bytes(estimate.optimizer_state_bytes),
            format_bytes(estimate.peak_bytes),
        )
    # byte columns right-aligned under their headers, the optimizer names and phases left-aligned
    spans = [[match.span() for match in re.finditer(r"\S+(?: \S+)*", line)] for line in table]
    for index in range(len(TRAINING_HEADERS)):
        edge = 0 if index in (0, len(TRAINING_HEADERS) - 1) else 1
        assert len({line[index][edge] for line in spans}) == 1, TRAINING_HEADERS[index]


def test_a_zero_is_zero_bytes_not_zero_mib(resnet18_report: Report) -> None:
    memory = _memory(resnet18_report)
    sgd = next(row for row in training_cells(memory) if row[0] == "SGD")
    assert sgd[3] == "0 B"


def test_measured_line(resnet18_report: Report) -> None:
    @dataclasses.dataclass
    class Measured:
        available: bool
        note: str = ""
        device: str = "cuda (test)"
        activation_peak_bytes: int = 336 * 2**20
        allocated_peak_bytes: int = 2**30
        overhead_bytes: int = 0
        device_used_bytes: int = 1307 * 2**20
        relative_error: float | None = 0.0

    memory = dataclasses.replace(_memory(resnet18_report), measured=Measured(True))
    assert measured_line(memory) == (
        "Measured on cuda (test): activation peak 336 MiB (static error +0.0%), allocator peak 1.00 GiB, "
        "CUDA context + framework 0 B, device total 1.28 GiB"
    )
    unavailable = dataclasses.replace(memory, measured=Measured(False, note="no CUDA device"))
    assert measured_line(unavailable) == "Measured: no CUDA device"
    assert memory_lines(unavailable)[-1] == "Measured: no CUDA device"
