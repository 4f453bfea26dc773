"""A report's leaves: the paths and values the symbolic fit reads, with and without their paths."""

from __future__ import annotations

import dataclasses

import torch
from hypothesis import given, settings
from torch import nn

from tests.profiles import examples
from tests.strategies import RandomNet, random_nets
from torchscan import crawl_module
from torchscan.symbolic.leaves import flat, leaves


@given(random_nets())
@settings(max_examples=examples(8), deadline=None)
def test_flat_gives_the_leaves_values_in_their_order_and_the_paths_when_asked(
    case: tuple[RandomNet, tuple[int, ...]],
) -> None:
    net, shape = case
    report = crawl_module(net, shape, batch_size=2)
    found = leaves(report)
    paths: list = []
    walked = flat(report, paths)
    assert paths == list(found)
    assert walked.values == list(found.values())
    assert flat(report).values == walked.values and flat(report).structure == walked.structure


class _Reshapes(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).split(4, dim=1)[0] if x.shape[1] > 2 else x.flatten(1)


def test_equal_structures_mean_equal_paths_and_a_changed_tree_shows() -> None:
    # sizes 4 and 9 take the same path: one structure, one list of paths (values differ);
    # 2 takes the other branch (two more rows), and a report without memory lacks a subtree
    small, large, short = (crawl_module(_Reshapes(), (length, 4)) for length in (4, 9, 2))
    assert flat(small).structure == flat(large).structure and list(leaves(small)) == list(leaves(large))
    assert flat(small).values != flat(large).values
    assert flat(small).structure != flat(short).structure and list(leaves(small)) != list(leaves(short))
    bare = dataclasses.replace(small, memory=None)
    assert flat(bare).structure != flat(small).structure and list(leaves(bare)) != list(leaves(small))
    assert leaves(bare)[("memory",)] is None


def test_a_leaf_and_a_container_swapped_are_another_structure() -> None:
    # the same containers in the same order, a leaf before or after the inner one: other paths
    report = crawl_module(nn.Linear(3, 2), (3,))
    before, after = (dataclasses.replace(report, context=value) for value in ((7, (8,)), ((8,), 7)))
    assert list(leaves(before)) != list(leaves(after))
    assert flat(before).structure != flat(after).structure
    assert sorted(map(repr, flat(before).values)) == sorted(map(repr, flat(after).values))  # the same values
