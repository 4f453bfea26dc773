"""The comparison records: a row on one side counts 0 on the other, differences are B − A."""

from __future__ import annotations

import dataclasses

import pytest

from torchscan.records import ROW_METRICS, Comparison, Context, Row, RowDiff, Totals


def _row(name: str, params: int, flops: int, parent: str = "", depth: int = 1) -> Row:
    return Row(
        name=name,
        type="Linear",
        kind="module",
        depth=depth,
        parent=parent,
        is_leaf=True,
        output_shape=(1, 2),
        params=params,
        trainable_params=params,
        shared_params=0,
        param_bytes=4 * params,
        buffer_bytes=0,
        flops=flops,
        macs=flops // 2,
        dmas=flops,
        unknown_ops=0,
        calls=1,
        output_bytes=8,
    )


def _totals(params: int, flops: int, complete: bool = True) -> Totals:
    return Totals(params, params, 0, 4 * params, 0, flops, flops // 2, flops, complete, 0 if complete else 1)


_CONTEXT = Context("Net", "2.x", "torch.fx", ((1, 4),), ((1, 2),), ("float32",), "cpu", False)


def test_status_and_side_values() -> None:
    both = RowDiff("fc", _row("fc", 10, 40), _row("fc", 12, 48))
    only_b = RowDiff("head", None, _row("head", 6, 24))
    assert (both.status, only_b.status) == ("both", "only_b")
    assert both.delta("params") == 2 and both.delta("flops") == 8 and both.changed
    assert only_b.value("a", "params") is None and only_b.delta("params") == 6 and only_b.changed
    assert RowDiff("fc", _row("fc", 10, 40), None).delta("macs") == -20
    assert not RowDiff("fc", _row("fc", 10, 40), _row("fc", 10, 40)).changed
    with pytest.raises(ValueError, match="in neither report"):
        RowDiff("ghost", None, None)


def test_a_type_change_is_a_change() -> None:
    a, b = _row("act", 0, 4), dataclasses.replace(_row("act", 0, 4), type="GELU")
    assert RowDiff("act", a, b).changed and all(RowDiff("act", a, b).delta(m) == 0 for m in ROW_METRICS)


def test_place_in_the_tree_comes_from_b_where_it_has_the_row() -> None:
    diff = RowDiff(
        "add_1", _row("add_1", 0, 4, parent="block1", depth=2), _row("add_1", 0, 4, parent="block2", depth=3)
    )
    assert (diff.parent, diff.depth) == ("block2", 3)


def test_comparison_totals_and_dict() -> None:
    rows = (RowDiff("fc", _row("fc", 10, 40), _row("fc", 12, 48)), RowDiff("head", None, _row("head", 6, 24, depth=2)))
    compared = Comparison(
        "small", "big", _CONTEXT, _CONTEXT, _totals(10, 40), _totals(18, 72, complete=False), rows, 100, 80
    )
    assert compared.total_delta("params") == 8 and compared.total_delta("model_bytes") == 32
    assert compared.activation_peak_delta == -20 and not compared.complete
    assert compared.only_b == (rows[1],) and compared.only_a == () and compared.row("head") is rows[1]
    assert compared.rows_to_depth(1) == (rows[0],)
    data = compared.to_dict(depth=1)
    assert data["totals"]["flops"] == {"a": 40, "b": 72, "delta": 32}
    assert data["totals"]["activation_peak_bytes"] == {"a": 100, "b": 80, "delta": -20}
    assert [row["name"] for row in data["rows"]] == ["fc"] and data["rows"][0]["params_delta"] == 2
    assert (
        dataclasses.replace(compared, activation_peak_a=None).to_dict()["totals"]["activation_peak_bytes"]["delta"]
        is None
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        compared.label_a = "x"  # type: ignore[misc]
