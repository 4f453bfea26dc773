"""Guards: what a trace read from its shape pass, and whether it holds for another input's values."""

from __future__ import annotations

import torch

from torchscan.graph.guards import METADATA, READ, Guard, guards_hold


def test_metadata_guards_read_rank_dtype_and_device() -> None:
    value = torch.empty(2, 3, dtype=torch.float16)
    guards = [Guard("x", "ndim", 2), Guard("x", "dtype", torch.float16), Guard("x", "device", torch.device("cpu"))]
    assert {guard.kind for guard in guards} == METADATA
    assert guards_hold(guards, {"x": value})
    assert not guards_hold(guards, {"x": value.float()})  # another dtype
    assert not guards_hold(guards, {"x": value[0]})  # another rank
    assert not guards_hold(guards, {"y": value})  # the node is gone: the graph is not known to hold
    assert [READ[guard.kind](value) for guard in guards] == [guard.value for guard in guards]


def test_size_guards_read_as_python_reads_them() -> None:
    assert guards_hold([Guard("n", "bool", True), Guard("n", "int", 3)], {"n": 3})
    assert not guards_hold([Guard("n", "index", 3)], {"n": 4})
    assert guards_hold([Guard("x", "len", 5)], {"x": torch.empty(5, 2)})
    assert not guards_hold([Guard("x", "len", 5)], {"x": torch.empty(())})  # a 0-d tensor has no len
