"""The memory plan (what a graph's names, ops, frames and parameters decide) kept across analyses of
one model at other inputs: the memory graph made with a kept plan equals one made afresh."""

from __future__ import annotations

import torchvision

from torchscan import crawl_module
from torchscan.passes.memory.context import PlanMemo, memory_graph, plan_key
from torchscan.passes.params import collect_params
from torchscan.records import node_records


def test_a_kept_plan_gives_the_memory_graph_made_afresh() -> None:
    model = torchvision.models.resnet18(weights=None).train()
    params = collect_params(model)
    first, second = (crawl_module(model, (3, size, size)).records for size in (64, 33))
    memo = PlanMemo()
    memory_graph(first, params, memo=memo)
    (kept,), (liveness,) = memo.plans.values(), memo.liveness.values()
    reused, fresh = memory_graph(second, params, memo=memo), memory_graph(second, params)
    assert list(memo.plans.values()) == [kept]  # the same key: the plan was reused, not remade
    assert list(memo.liveness.values()) == [liveness]
    assert reused.live == fresh.live
    assert reused.grads == fresh.grads
    assert reused.sources == fresh.sources
    assert reused.families == fresh.families
    assert reused.reads == fresh.reads and reused.trainable == fresh.trainable


def test_the_plan_key_is_per_node_outputs_and_calls() -> None:
    model = torchvision.models.resnet18(weights=None).eval()
    ordered = node_records(crawl_module(model, (3, 32, 32)).records)
    key = plan_key(ordered)
    assert len(key) == len(ordered)
    assert {flags for flags, record in zip(key, ordered, strict=True) if record.op == "placeholder"} == {(True, False)}
    assert {flags for flags, record in zip(key, ordered, strict=True) if record.op == "call_module"} == {(True, True)}
