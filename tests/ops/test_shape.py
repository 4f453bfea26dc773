"""Views, metadata and attribute reads are free."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import cost, function_cost, spec
from tests.profiles import examples
from torchscan import crawl_module
from torchscan.ops.shape import selected_elements
from torchscan.records import Cost, TensorSpec

T = torch.Tensor


def test_attribute_reads_are_free() -> None:
    assert cost(getattr, (spec(4, 8),), (spec(4, 8),)) == Cost()


class _Sorts(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ordered = torch.sort(x, dim=-1)
        top = torch.topk(x, 2)
        return ordered.values + 1, ordered.indices, top.values, x.max(dim=1).values, x.mT


def test_fields_of_returned_structures_leave_the_totals_complete() -> None:
    report = crawl_module(_Sorts(), (4, 8))
    assert report.totals.complete and report.totals.unknown_ops == 0
    assert not [diagnostic for diagnostic in report.diagnostics if diagnostic.code == "unknown-op"]


class _Passes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.same = nn.Conv2d(1, 2, 3), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.same(self.conv(x))
        return torch.detach(y.detach()).requires_grad_()


def test_identity_and_detach_keep_the_receptive_field() -> None:
    """Identity, detach (both spellings) and requires_grad_ pass a 3×3 conv's field on as is."""
    report = crawl_module(_Passes(), (1, 6, 6), receptive_field=True)
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    assert {row.receptive_field for row in report.rows if row.node} == {(3, 3)}


class _Casts(nn.Module):
    def __init__(self, cast: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)
        self.cast = cast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.cast(self.first(x)))


@pytest.mark.parametrize(
    "cast",
    [
        lambda x: x.double().float(),
        lambda x: x.to(torch.float64).type(torch.float32),
        lambda x: x.half().type_as(x),
        lambda x: x.bfloat16().cpu().float(),
    ],
)
def test_casts_keep_the_receptive_field(cast: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """A cast moves no element: two 3×3 convs around it still see 5×5, with no receptive-field
    diagnostic."""
    report = crawl_module(_Casts(cast), (1, 9, 9), receptive_field=True)
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    assert report.row("second").receptive_field == (5, 5)


def _index_item(data: st.DataObject, size: int, advanced: tuple[int, ...]) -> tuple[Any, int]:
    """One item of an index for a dimension of ``size`` and the dimensions it takes: an integer, a
    slice, ``None``, an integer tensor of shape ``advanced``, a list of integers, or a mask."""
    kinds = ["slice", "none", "mask"] + (["int", "tensor", "list"] if size > 0 else [])
    kind = data.draw(st.sampled_from(kinds))
    if kind == "int":
        return data.draw(st.integers(-size, size - 1)), 1
    if kind == "slice":
        bound = st.none() | st.integers(-size - 2, size + 2)
        return slice(data.draw(bound), data.draw(bound), data.draw(st.none() | st.integers(1, 3))), 1
    if kind == "none":
        return None, 0
    if kind == "mask":
        return torch.ones(size, dtype=torch.bool), 1  # every element selected: the count the formula gives
    values = data.draw(
        st.lists(st.integers(-size, size - 1), min_size=math.prod(advanced), max_size=math.prod(advanced))
    )
    if kind == "list":
        return values[:1] * advanced[0] if len(advanced) == 1 else values[:1], 1
    return torch.tensor(values, dtype=torch.long).reshape(advanced), 1


def _described(item: Any) -> Any:
    """An index item as a described call holds it (tensors as specs, lists as tuples)."""
    if isinstance(item, torch.Tensor):
        return TensorSpec(tuple(item.shape), item.dtype)
    return tuple(item) if isinstance(item, list) else item


@settings(max_examples=examples(200), deadline=None)
@given(data=st.data(), shape=st.lists(st.integers(0, 4), min_size=1, max_size=4))
def test_the_elements_an_index_selects_are_what_torch_selects(data: st.DataObject, shape: list[int]) -> None:
    """``selected_elements`` against indexing a real tensor (a mask selecting every element it covers):
    integers, slices of any bounds and steps, ``None``, ``...``, integer tensors and lists broadcasting
    together."""
    advanced = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    ellipsis_at = data.draw(st.none() | st.integers(0, len(shape)))
    items: list[Any] = []
    for position, size in enumerate(shape[: data.draw(st.integers(0, len(shape)))]):
        if position == ellipsis_at:
            items.append(Ellipsis)
            break
        item, _ = _index_item(data, size, advanced)
        items.append(item)
    alone = len(items) == 1 and not isinstance(items[0], list) and data.draw(st.booleans())
    key = items[0] if alone else tuple(items)  # a list as the whole index reads as integers (documented)
    try:
        expected = torch.zeros(shape)[key].numel()
    except IndexError:  # index tensors that do not broadcast together
        assume(False)
    described = tuple(_described(item) for item in key) if type(key) is tuple else _described(key)
    assert selected_elements(tuple(shape), described) == expected


def test_an_index_write_reads_the_value_and_index_and_writes_the_selection() -> None:
    """``x[index] = value``: ``DMAs = N_sel + N_value + N_index``, no arithmetic, for both spellings."""
    destination = spec(2, 6, 5)
    assert cost(
        operator.setitem,
        (destination, spec(2, 2, 5)),
        (destination,),
        a=destination,
        b=(slice(None), slice(0, 4, 2)),
        c=spec(2, 2, 5),
    ) == Cost(dmas=20 + 20)
    assert cost(operator.setitem, (destination,), (destination,), a=destination, b=(0, 3), c=1.0) == Cost(dmas=5)
    index = spec(4, dtype=torch.int64)
    assert cost(
        T.__setitem__, (destination, index), (destination,), kind="method", args=((Ellipsis, index), 0.0)
    ) == Cost(dmas=2 * 6 * 4 + 4)
    mask = spec(2, 6, dtype=torch.bool)
    assert cost(
        operator.setitem, (destination, mask, spec(5)), (destination,), a=destination, b=mask, c=spec(5)
    ) == Cost(dmas=60 + 5 + 12)


class _Writes(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.zeros_like(x)
        y[:, 1:] = x[:, :-1] * 2
        y[..., 0] = 1.0
        return y


def test_a_model_writing_slices_counts_its_writes() -> None:
    report = crawl_module(_Writes(), (3, 4))
    assert report.context.capture == "torch.fx" and report.totals.complete
    by_node = {name: data["cost"] for name, data in report.records.nodes(data=True) if "setitem" in name}
    assert by_node == {
        "setitem": Cost(dmas=2 * 2 * 4),
        "setitem_1": Cost(dmas=3),
    }  # batch 1: (1, 2, 4) written and read


class _Grid(nn.Module):
    """A coordinate grid over the input's positions (timm's RoPE helpers build one): ``torch.meshgrid`` of
    a list of traced tensors reaches torch's own ``_VF.meshgrid`` with the list."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axes = [torch.arange(size, dtype=x.dtype) for size in x.shape[-2:]]
        grid = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1)
        return x + grid.sum(-1)


def test_a_grid_of_traced_coordinates_is_free_and_counted() -> None:
    report = crawl_module(_Grid(), (3, 4, 5))
    assert report.context.capture == "torch.fx" and report.totals.complete
    assert [d.code for d in report.diagnostics] == ["shape-specialized"]  # iterating x.shape[-2:] reads its length
    assert "meshgrid" in {row.type for row in report.rows}


@settings(max_examples=examples(60), deadline=None)
@given(data=st.data(), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_scatters_and_index_writes_count_the_elements_torch_writes(data: st.DataObject, shape: list[int]) -> None:
    """Each write formula's ``N_sel`` against the elements a real call writes (distinct indices: a write
    counted once is one element set): ``scatter`` and ``index_copy`` of ones into zeros, ``index_fill`` of
    one, ``index_put`` of ones; the formulas' closed forms from those counts, through the graph's binding of
    the call (:func:`function_cost`, :func:`method_cost`)."""
    from tests.ops.helpers import function_cost, method_cost

    dim = data.draw(st.integers(0, len(shape) - 1))
    x = torch.zeros(shape)
    copy = 2 * x.numel()  # an out-of-place write copies its destination first: N_self read, N_out written
    # scatter: an index no larger than x along every dim, distinct along ``dim`` per column
    index_shape = [data.draw(st.integers(1, size)) for size in shape]
    picks = torch.stack(
        [torch.randperm(shape[dim])[: index_shape[dim]] for _ in range(math.prod(index_shape) // index_shape[dim])]
    )
    index = picks.reshape(*index_shape[:dim], *index_shape[dim + 1 :], index_shape[dim]).movedim(-1, dim)
    source = torch.ones(index_shape)
    written = int(x.scatter(dim, index, source).sum())
    assert written == index.numel()
    assert function_cost(torch.scatter, x, dim, index, source) == Cost(dmas=3 * written + copy)
    assert method_cost(T.scatter, x, dim, index, 1.0) == Cost(dmas=2 * written + copy)
    assert method_cost(T.scatter_, x.clone(), dim, index, source) == Cost(dmas=3 * written)
    reduced = method_cost(T.scatter_reduce, x, dim, index, source, "mean")
    assert reduced == Cost(flops=written + x.numel(), dmas=4 * written + copy)
    # index_copy / index_fill: distinct positions along ``dim``
    count = data.draw(st.integers(1, shape[dim]))
    positions = torch.randperm(shape[dim])[:count]
    slices = [*shape[:dim], count, *shape[dim + 1 :]]
    copied = int(x.index_copy(dim, positions, torch.ones(slices)).sum())
    assert method_cost(T.index_copy, x, dim, positions, torch.ones(slices)) == Cost(dmas=count + 2 * copied + copy)
    filled = int(x.index_fill(dim, positions, 1.0).sum())
    assert copied == filled
    assert method_cost(T.index_fill, x, dim, positions, 1.0) == Cost(dmas=count + filled + copy)
    assert method_cost(T.index_fill_, x.clone(), dim, positions, 1.0) == Cost(dmas=count + filled)
    # index_put: distinct positions of the first dims
    depth = data.draw(st.integers(1, len(shape)))
    flat = torch.randperm(math.prod(shape[:depth]))[: data.draw(st.integers(1, math.prod(shape[:depth])))]
    indices = tuple(torch.unravel_index(flat, tuple(shape[:depth])))
    value = torch.ones(shape[depth:])
    put = int(x.index_put(indices, value).sum())
    index_reads = sum(item.numel() for item in indices)
    assert method_cost(T.index_put, x, indices, value) == Cost(dmas=put + value.numel() + index_reads + copy)
    assert method_cost(T.index_put_, x.clone(), indices, value, True) == Cost(
        flops=put, dmas=2 * put + value.numel() + index_reads
    )


def test_a_masked_scatter_counts_every_element_the_mask_covers() -> None:
    """How many mask elements are true is data: every one is counted (an upper bound, as a boolean index)."""
    from tests.ops.helpers import method_cost

    x, mask = torch.zeros(3, 4), torch.zeros(4, dtype=torch.bool)
    assert method_cost(T.masked_scatter, x, mask, torch.ones(12)) == Cost(dmas=4 + 2 * 12 + 2 * 12)
    assert method_cost(T.masked_scatter_, x, mask, torch.ones(12)) == Cost(dmas=4 + 2 * 12)


class _ScatterWrites(nn.Module):
    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        rows = index[0]
        return (
            x.scatter(1, index, x)
            + torch.zeros_like(x).scatter_(1, index, 1.0)
            + x.scatter_reduce(1, index, x, "amax")
            + x.index_copy(1, rows, x)
            + x.index_fill(1, rows, 0.0)
            + x.masked_scatter(x > 0, x)
            + x.index_put((rows[:2],), x[0])
        )


def test_scatters_and_index_writes_leave_the_totals_complete() -> None:
    """Before, ``scatter`` (deepseek_v3's and PhiMoE's routers), ``scatter_reduce``, ``index_copy``, ``index_fill``,
    ``masked_scatter`` and ``index_put`` were unknown ops: partial totals."""
    report = crawl_module(_ScatterWrites(), args=(torch.randn(2, 8), torch.zeros(2, 8, dtype=torch.long)))
    assert report.totals.complete and report.totals.unknown_ops == 0


def test_scatters_read_the_source_where_the_index_points_and_reduce_in_place() -> None:
    """A source larger than the index is read only where the index points (``N_index`` elements); in-place
    spellings copy nothing; the legacy ``reduce=`` (keyword-only) combines with the destination:
    one FLOP and one more read per index element."""
    from tests.ops.helpers import method_cost

    x, index, source = torch.zeros(4, 6), torch.zeros(2, 3, dtype=torch.long), torch.ones(4, 6)
    copy = 2 * 24
    assert method_cost(T.scatter, x, 1, index, source) == Cost(dmas=3 * 6 + copy)
    assert method_cost(T.scatter, x, 1, index, source, reduce="add") == Cost(flops=6, dmas=4 * 6 + copy)
    assert method_cost(T.scatter_, x.clone(), 1, index, source, reduce="multiply") == Cost(flops=6, dmas=4 * 6)
    assert method_cost(T.scatter_reduce, x, 1, index, source, "sum") == Cost(flops=6, dmas=4 * 6 + copy)
    assert method_cost(T.scatter_reduce_, x.clone(), 1, index, source, "amax") == Cost(flops=6, dmas=4 * 6)
    assert method_cost(T.index_copy_, x.clone(), 0, torch.tensor([2, 0]), torch.ones(2, 6)) == Cost(dmas=2 + 24)
    # index_fill with a 0-d tensor value reads it once: two rows of 6 written, 2 indices read, 1 value read
    assert method_cost(T.index_fill, x, 0, torch.tensor([2, 0]), torch.tensor(1.0)) == Cost(dmas=2 + 12 + 1 + copy)


@pytest.mark.parametrize(
    ("factory", "per_element"),
    [
        (torch.hann_window, 4),
        (torch.hamming_window, 4),
        (torch.bartlett_window, 4),
        (torch.blackman_window, 8),
        (torch.kaiser_window, 8),
    ],
)
def test_window_functions_evaluate_each_element(factory: Any, per_element: int) -> None:
    """A window of 10 evaluates its function at each index (a cosine or two, a Bessel function for Kaiser's) and
    writes it: ``c·10`` FLOPs, 10 DMAs; ``logspace`` one power an element; the index factories (``tril_indices``,
    ``range``) only write."""
    assert function_cost(factory, 10) == Cost(flops=per_element * 10, dmas=10)


def test_factories_of_indices_and_powers() -> None:
    assert function_cost(torch.logspace, 0, 2, 7) == Cost(flops=7, dmas=7)
    assert function_cost(torch.tril_indices, 4, 4) == Cost(dmas=2 * 10)
    # vander: 3 elements to 5 powers, x^0 and x^1 free, x^2..x^4 one product each
    assert function_cost(torch.vander, torch.arange(3.0), 5) == Cost(flops=9, dmas=3 + 15)


def test_diagonals_real_parts_and_conjugates_are_views() -> None:
    """``diagonal``, ``adjoint``, ``real``/``imag`` of a complex tensor, the lazy ``conj`` and ``positive`` return
    views: free; ``ravel`` is free on a contiguous input and a copy of a strided one (as ``reshape``)."""
    x, z = torch.randn(3, 4, 4), torch.randn(3, 4, dtype=torch.complex64)
    for function, arg in ((torch.diagonal, x), (torch.adjoint, x), (torch.real, z), (torch.imag, z)):
        assert function_cost(function, arg) == Cost()
    assert function_cost(torch.conj, z) == function_cost(torch.positive, x) == Cost()
    assert function_cost(torch.ravel, x) == Cost()
    strided = TensorSpec((3, 4, 4), torch.float32, contiguous=False)
    assert cost(torch.ravel, (strided,), (spec(48),)) == Cost(dmas=2 * 48)


def test_flips_rotations_and_stacks_copy() -> None:
    x = torch.randn(3, 4)
    for function in (torch.fliplr, torch.flipud, torch.rot90):
        assert function_cost(function, x) == Cost(dmas=24)
    assert function_cost(torch.column_stack, [x, x]) == function_cost(torch.dstack, [x, x]) == Cost(dmas=2 * 24)


def test_diagonal_matrices_and_take() -> None:
    """A vector of 4 into a 4×4 diagonal matrix (zeros written too: 4 + 16), a batch of 2 vectors by ``diag_embed``
    (8 + 32); a matrix's diagonal copied out (2·3); ``take`` of 5 elements (index, element, output: 3·5)."""
    v, m = torch.randn(4), torch.randn(3, 5)
    assert function_cost(torch.diag, v) == function_cost(torch.diagflat, v) == Cost(dmas=4 + 16)
    assert function_cost(torch.diag_embed, torch.randn(2, 4)) == Cost(dmas=8 + 32)
    assert function_cost(torch.diag, m) == Cost(dmas=2 * 3)
    assert function_cost(torch.take, m, torch.tensor([0, 3, 5, 7, 14])) == Cost(dmas=15)


def test_broadcast_tensors_are_views() -> None:
    """``broadcast_tensors`` returns expanded views of its operands (stride 0 where broadcast): free, as ``expand``
    (``torch.distributions`` broadcasts its parameters so)."""
    a, b = torch.randn(3, 1), torch.randn(1, 4)
    assert function_cost(torch.broadcast_tensors, a, b) == Cost()
    assert all(out._base is not None for out in torch.broadcast_tensors(a, b))
