"""What keeps tensors of the forward alive after it returns: objects of the output, the model's own state."""

from __future__ import annotations

import torch
from torch import nn

from torchscan.graph.held import held_by_objects, held_by_state


class _Holder:
    def __init__(self, *values: object) -> None:
        self.values = list(values)


class _Stateful(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2))
        self.register_buffer("running", torch.zeros(2))
        self.child = nn.Linear(2, 2)
        self.size = 3
        self.name = "stateful"


def _ids(values: tuple[object, ...]) -> set[int]:
    return {id(value) for value in values}


def test_the_state_a_forward_stored_is_found_wherever_the_module_keeps_it() -> None:
    module = _Stateful()
    plain, item, deep = torch.ones(1), torch.ones(2), torch.ones(3)
    module.last = plain  # a plain attribute
    module.cache = {"cpu": item}  # an item of a dict the module holds
    module.holder = _Holder([deep])  # inside an object it holds
    assert _ids(held_by_state([module])) == _ids((plain, item, deep))


def test_the_module_own_tensors_and_children_are_not_its_held_state() -> None:
    """Parameters, buffers and sub-modules are the model's (alive after the call anyway); configuration values
    are skipped; the buffers are looked at only when asked (a recorded forward replaces them in place)."""
    module = _Stateful()
    assert held_by_state([module]) == ()
    assert _ids(held_by_state([module], buffers=True)) == {id(module.running)}


def test_ignored_attributes_are_not_walked() -> None:
    module = _Stateful()
    module.constant, module.kept = torch.ones(1), torch.ones(1)
    assert _ids(held_by_state([module], ignore={module: {"constant"}})) == {id(module.kept)}


def test_an_object_shared_by_modules_is_found_once() -> None:
    first, second, table = _Stateful(), _Stateful(), torch.ones(4)
    first.shared = second.shared = _Holder(table)
    assert held_by_state([first, second]) == (table,)


def test_objects_of_the_output_hold_tensors_its_data_does_not() -> None:
    """The output's data (tensors in tuples, dicts) is the output itself; an object that is not data (a cache)
    holds tensors the caller keeps alive with it."""
    data, cached = torch.ones(1), torch.ones(2)
    assert _ids(held_by_objects((data, {"cache": _Holder(cached)}))) == {id(cached)}
    assert held_by_objects((data, [data])) == ()
