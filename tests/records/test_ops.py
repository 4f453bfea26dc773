"""``tensor_leaves`` finds every spec of a nested value, in order, whatever the containers."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from types import MappingProxyType
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.profiles import examples
from torchscan.records import TensorSpec, tensor_leaves

_Pair = namedtuple("_Pair", "first second")

Built = tuple[Any, list[TensorSpec]]
"""A value and the specs placed in it, in the order they were placed (the expected leaves)."""

specs: st.SearchStrategy[Built] = st.builds(
    TensorSpec,
    st.lists(st.integers(0, 8), max_size=4).map(tuple),
    st.sampled_from([torch.float32, torch.int64]),
    st.booleans(),
).map(lambda spec: (spec, [spec]))
plain: st.SearchStrategy[Built] = (
    st.none() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=2) | st.just(slice(1, 2))
).map(lambda value: (value, []))


def _sequence(kind: type, items: list[Built]) -> Built:
    return kind(value for value, _ in items), [spec for _, found in items for spec in found]


def _mapping(kind: Any, items: list[Built]) -> Built:
    return kind({str(position): value for position, (value, _) in enumerate(items)}), [
        spec for _, found in items for spec in found
    ]


def _containers(children: st.SearchStrategy[Built]) -> st.SearchStrategy[Built]:
    items = st.lists(children, max_size=4)
    return (
        items.map(lambda found: _sequence(list, found))
        | items.map(lambda found: _sequence(tuple, found))
        | st.tuples(children, children).map(lambda pair: (_Pair(pair[0][0], pair[1][0]), pair[0][1] + pair[1][1]))
        | items.map(lambda found: _mapping(dict, found))
        | items.map(lambda found: _mapping(OrderedDict, found))
        | items.map(lambda found: _mapping(MappingProxyType, found))
    )


values = st.recursive(specs | plain, _containers, max_leaves=12)


@settings(max_examples=examples(200), deadline=None)
@given(values)
def test_tensor_leaves_are_every_spec_in_order(built: Built) -> None:
    value, placed = built
    found = list(tensor_leaves(value))
    assert len(found) == len(placed) and all(a is b for a, b in zip(found, placed, strict=True))
