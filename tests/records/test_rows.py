"""Which rows are bookkeeping (folded in the table and the graph): the one definition, at its edges."""

from __future__ import annotations

from dataclasses import replace

import pytest

from torchscan.records.rows import FREE_DMAS_FRACTION, Row, RowKind, Totals, is_bookkeeping

TOTALS = Totals(
    params=10,
    trainable_params=10,
    non_trainable_params=0,
    param_bytes=40,
    buffer_bytes=0,
    flops=10**6,
    macs=10**5,
    dmas=10**6,
    complete=True,
    unknown_ops=0,
)
LIMIT = int(TOTALS.dmas * FREE_DMAS_FRACTION)  # 100 DMAs


def _row(kind: RowKind = "method", **values: int) -> Row:
    counts = {"params": 0, "flops": 0, "macs": 0, "dmas": 0, "unknown_ops": 0, **values}
    return Row(
        name="block.view",
        type="view",
        kind=kind,
        depth=2,
        parent="block",
        is_leaf=True,
        output_shape=(1, 8),
        trainable_params=0,
        shared_params=0,
        param_bytes=0,
        buffer_bytes=0,
        calls=1,
        node="view",
        **counts,
    )


def test_free_functional_rows_are_bookkeeping() -> None:
    assert is_bookkeeping(_row(), TOTALS)  # a view
    assert is_bookkeeping(_row("function", dmas=LIMIT), TOTALS)  # a small factory or cast, at the limit


@pytest.mark.parametrize(
    "row",
    [
        _row(flops=1),  # any arithmetic is shown, however small
        _row(macs=1),
        _row(dmas=LIMIT + 1),  # more than 1/10^4 of the model's data movement
        _row(unknown_ops=1),  # an op without a formula may cost anything
        _row(params=1),
        replace(_row(), kind="module", node=None),  # modules and parameters are never folded
        replace(_row(), kind="parameter", node=None),
    ],
)
def test_rows_that_cost_something_are_never_bookkeeping(row: Row) -> None:
    assert not is_bookkeeping(row, TOTALS)


def test_a_model_without_data_movement() -> None:
    nothing = replace(TOTALS, flops=0, macs=0, dmas=0)
    assert is_bookkeeping(_row(), nothing) and not is_bookkeeping(_row(dmas=1), nothing)
