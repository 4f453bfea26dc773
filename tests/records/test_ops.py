"""``tensor_leaves`` finds every spec of a nested value, in order, whatever the containers."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.profiles import examples
from torchscan.records import TensorSpec, tensor_leaves

_Pair = namedtuple("_Pair", "first second")

specs = st.builds(
    TensorSpec,
    st.lists(st.integers(0, 8), max_size=4).map(tuple),
    st.sampled_from([torch.float32, torch.int64]),
    st.booleans(),
)
scalars = st.none() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=2) | st.booleans()
values = st.recursive(
    specs | scalars | st.just(torch.float16) | st.just(slice(1, 2)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.tuples(children, children).map(lambda pair: _Pair(*pair))
        | st.dictionaries(st.text(max_size=2), children, max_size=3)
        | st.dictionaries(st.text(max_size=2), children, max_size=3).map(OrderedDict)
        | st.dictionaries(st.text(max_size=2), children, max_size=3).map(MappingProxyType)
    ),
    max_leaves=12,
)


def _reference(value: Any) -> Iterator[TensorSpec]:
    if isinstance(value, TensorSpec):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _reference(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _reference(item)


@settings(max_examples=examples(200), deadline=None)
@given(values)
def test_tensor_leaves_are_every_spec_in_order(value: Any) -> None:
    found = list(tensor_leaves(value))
    expected = list(_reference(value))
    assert len(found) == len(expected) and all(a is b for a, b in zip(found, expected, strict=True))
