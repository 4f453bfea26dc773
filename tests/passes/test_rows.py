"""Roll-up properties: rows partition the model at every depth; counts scale with batch."""

from __future__ import annotations

import torchvision
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import RandomNet, random_nets
from torchscan import Report, crawl_module


def assert_rows_sum_to_totals(report: Report) -> None:
    totals = report.totals
    for depth in range(1, report.max_depth + 1):
        rows = report.rows_at_depth(depth)
        assert sum(row.flops for row in rows) == totals.flops, depth
        assert sum(row.macs for row in rows) == totals.macs, depth
        assert sum(row.dmas for row in rows) == totals.dmas, depth
        assert sum(row.params for row in rows) == totals.params, depth
        assert sum(row.trainable_params for row in rows) == totals.trainable_params, depth
        assert sum(row.unknown_ops for row in rows) == totals.unknown_ops, depth


def assert_tree_consistent(report: Report) -> None:
    by_name = {row.name: row for row in report.rows}
    for row in report.rows:
        children = [child for child in report.rows if child.parent == row.name]
        assert row.is_leaf == (not children)
        if children:
            assert sum(child.flops for child in children) == row.flops, row.name
            assert sum(child.params for child in children) == row.params, row.name
        if row.parent:
            assert by_name[row.parent].depth == row.depth - 1


@given(random_nets())
def test_rows_sum_to_totals_at_every_depth(case: tuple[RandomNet, tuple[int, int, int]]) -> None:
    model, shape = case
    report = crawl_module(model, shape, batch_size=2)
    assert report.totals.complete
    assert_rows_sum_to_totals(report)
    assert_tree_consistent(report)


@given(random_nets(), st.integers(2, 5))
def test_counts_scale_with_batch(case: tuple[RandomNet, tuple[int, int, int]], batch: int) -> None:
    """MACs are linear in the batch; FLOPs and DMAs are affine (per-channel and parameter terms are
    paid once per call), so their second difference over the batch is zero."""
    model, shape = case
    one, two, many = (crawl_module(model, shape, batch_size=b).totals for b in (1, 2, batch))
    assert many.macs == batch * one.macs
    for metric in ("flops", "dmas"):
        slope = getattr(two, metric) - getattr(one, metric)
        assert getattr(many, metric) == getattr(one, metric) + (batch - 1) * slope, metric


def test_torchvision_rows_partition_every_depth() -> None:
    for factory in (torchvision.models.resnet18, torchvision.models.densenet121, torchvision.models.vit_b_16):
        report = crawl_module(factory().eval(), (3, 224, 224))
        assert_rows_sum_to_totals(report)
        assert_tree_consistent(report)


def test_functional_calls_get_rows_under_their_module() -> None:
    report = crawl_module(torchvision.models.resnet18(), (3, 64, 64))
    block = [row for row in report.rows if row.parent == "layer1.0"]
    adds = [row for row in block if row.type == "add"]
    assert len(adds) == 1 and adds[0].kind == "function" and adds[0].depth == 3
    assert adds[0].flops == 64 * 16 * 16  # one add per output element
    relu = report.row("layer1.0.relu")
    assert relu.calls == 2  # the block reuses its ReLU


def test_parameters_held_by_traced_modules_get_rows() -> None:
    report = crawl_module(torchvision.models.vit_b_16(), (3, 224, 224))
    assert report.row("class_token").params == 768 and report.row("class_token").kind == "parameter"
    assert report.row("encoder.pos_embedding").params == 197 * 768
    assert report.totals.params == 86_567_656
