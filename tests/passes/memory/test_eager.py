"""Eager-Python liveness: a name holds its value until the statement rebinding it completes.

Each net works on one activation size ``A`` (bytes of a ``1x1x16x16`` float32 tensor); the peaks are
worked out by hand from what eager Python holds, and checked against a real CPU run.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.functional import adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, relu

from tests.profiles import examples
from tests.strategies import RandomNet, random_nets
from torchscan import crawl_module
from torchscan.measure.cpu import measure_inference, random_inputs

A = 4 * 16 * 16
"""Bytes of one activation."""


def _peaks(model: nn.Module) -> tuple[int, int]:
    """(static, measured) inference peaks, in activations."""
    static = crawl_module(model, (1, 16, 16), batch_size=1).memory.activation_peak_bytes
    measured = measure_inference(model, random_inputs([(1, 1, 16, 16)])).total_bytes
    return static // A, measured // A


class _Rebind(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = self.c(self.b(y))
        return y


def test_a_rebound_name_holds_its_value_until_the_statement_completes() -> None:
    """``y``'s old value is last read by ``b``, but the name holds it until ``c`` returns and ``y``
    is rebound. During ``c``: the input, the old ``y``, ``b``'s output (``c``'s argument) and ``c``'s
    output = 4 activations (freeing the old ``y`` at its last read would say 3)."""
    assert _peaks(_Rebind()) == (4, 4)


class _Loop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(1, 1, 1) for _ in range(3)])
        self.head = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            y = relu(block(x))  # a plain-name call: the outermost call is not recognised by name
        return self.head(y)


def test_a_name_bound_in_a_loop_is_released_by_the_next_iteration() -> None:
    """Each iteration rebinds ``y``: during the third, the input, the second ``y``, the block's output
    and the new ``y`` = 4 activations (holding every ``y`` to the frame's end says 5)."""
    assert _peaks(_Loop()) == (4, 4)


class _RebindWithoutReading(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = self.c(self.b(x))  # rebinds y without reading it
        return y


def test_a_name_rebound_without_being_read_holds_its_value_until_the_statement_completes() -> None:
    """The old ``y`` is not read by the statement that rebinds it, yet the name holds it until ``c``
    returns. During ``c``: the input, the old ``y``, ``b``'s output and ``c``'s output = 4 activations
    (releasing the old ``y`` when the statement starts says 3)."""
    assert _peaks(_RebindWithoutReading()) == (4, 4)


class _Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d, self.e = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = self.c(self.d(self.b(x)))  # b's result is a temporary of the line, read by d only
        y = self.e(y)  # the name is rebound again on another line
        return y


def test_a_temporary_of_a_rebinding_line_is_freed_at_its_last_read() -> None:
    """``b``'s result is never bound to a name: eager frees it once ``d`` has read it. During ``c``:
    the input, the old ``y`` (held until the statement completes), ``d``'s output and ``c``'s output
    = 4 activations; holding ``b``'s result through ``c`` as if the line bound it says 5."""
    assert _peaks(_Nested()) == (4, 4)


class _TwoOperands(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.f = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.c = nn.Conv2d(1, 4, 1)  # four activations out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = self.c(torch.add(self.b(x), self.f(x)))  # b and f: temporaries read by add only
        return y


def test_temporaries_read_later_on_their_line_are_freed_at_their_last_read() -> None:
    """``b``'s result is read by ``add`` two nodes later (``f`` runs in between); neither it nor
    ``f``'s is bound to a name, so both go once ``add`` returns. During ``c``: the input, the old ``y``
    (held until the statement completes), the sum and ``c``'s 4-activation output = 7 (holding
    ``b``'s result through ``c`` says 8; during ``add``: 5)."""
    assert _peaks(_TwoOperands()) == (7, 7)


class _SequentialLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(nn.ReLU(), nn.ReLU())  # traced as its children: seq.0, seq.1
        self.head = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            y = self.seq(x)
        return self.head(y)


def test_a_sequential_called_in_a_loop_releases_the_previous_value_when_it_rebinds() -> None:
    """No node is ``seq`` itself; its last child's result is the value ``y`` holds until the next
    iteration rebinds it. During the third ``seq.1``: the input, the second ``y``, ``seq.0``'s output and
    the new ``y`` = 4 activations (holding every ``y`` to the frame's end says 5)."""
    assert _peaks(_SequentialLoop()) == (4, 4)


class _SequentialLoopRead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(nn.ReLU(), nn.ReLU())
        self.g = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for _ in range(3):
            y = self.seq(x)
            out = self.g(y)  # another line reads y: still y's value, released by the next iteration
        return out


def test_a_value_read_on_another_line_is_still_released_when_its_name_is_rebound() -> None:
    """During the third ``seq.1``: the input, the second ``y`` and ``out`` (each held by its name until
    rebound), ``seq.0``'s output and the new ``y`` = 5 activations (holding every ``y`` to the frame's
    end says 6)."""
    assert _peaks(_SequentialLoopRead()) == (5, 5)


class _InnerCallOfTheSameName(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = torch.relu(torch.relu_(x) + y)  # the inner relu_ writes the input in place
        return y


def test_an_inner_call_named_like_the_outermost_one_does_not_end_the_statement() -> None:
    """``relu_`` runs first on the rebinding line and is named like its outermost call, ``relu``; the
    statement ends when the outer one returns. During it: the input (written in place by ``relu_``), the
    old ``y``, the sum (its argument) and the new ``y`` = 4 activations (ending the statement at the
    inner call frees the old ``y`` after the sum: 3)."""
    assert _peaks(_InnerCallOfTheSameName()) == (4, 4)


class _InnerCallHeld(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = torch.relu(torch.relu(x) + y)
        return y


@pytest.mark.xfail(strict=True, reason="an inner call named like the outermost one is taken for the statement's value")
def test_an_inner_call_named_like_the_outermost_one_is_a_temporary() -> None:
    """The inner ``relu(x)`` is read by the sum and freed when the sum returns. During the outer relu:
    the input, the old ``y``, the sum and the new ``y`` = 4 activations; the static walk holds the
    inner result too (5): it takes a node named like the line's outermost call for its value. Telling
    an inner call from the previous iteration's value of a loop (``x = x + block(x)``, whose next
    iteration reads it through a node not so named) needs more than the node order."""
    assert _peaks(_InnerCallHeld()) == (4, 4)


class _Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.a(x)
        u = self.b(t)
        return self.c(u)


class _Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.inner(x)  # binds the name the inner forward binds, in another frame
        return t


def test_a_name_bound_in_an_inner_frame_is_not_rebound_by_its_caller_s_line() -> None:
    """Both forwards are functions ``forward`` of this file and both bind ``t``: the caller's line does
    not rebind the inner frame's ``t``, which holds its value until the inner forward returns. During
    ``c``: the input, ``t``, ``u`` and ``c``'s output = 4 activations (3 if ``t`` were released at
    its last read)."""
    assert _peaks(_Outer()) == (4, 4)


class _Unit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.r = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.r(x)


class _ReadInsideAndOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner, self.inner2, self.c = _Unit(), _Unit(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        z = self.inner2(y)  # read first inside another module's user code
        w = z + y  # then by this frame's own line
        return self.c(w)


def test_a_returned_value_read_inside_another_call_is_held_by_its_name_to_the_end() -> None:
    """``y`` comes back from ``inner`` into a line binding it; ``inner2``'s forward reads it first, this
    frame's sum after. The name holds it until ``forward`` returns (the first reader's module call does
    not bound it). During ``c``: x, y, z, w and ``c``'s output = 5 activations (4 if ``y`` were released
    after the sum)."""
    assert _peaks(_ReadInsideAndOut()) == (5, 5)


class _Orphan(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b, self.c, self.d, self.e = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = (self.b(y), self.c(y))[1]  # b's result: no node of the line reads it
        y = self.d(y)
        return self.e(y) + y


def test_a_result_no_node_of_its_line_reads_is_released_by_the_next_binding() -> None:
    """``b``'s result is not the line's value and nothing reads it: eager Python drops it with the
    tuple once the first line completes; the static walk holds it until the next line binding ``y``
    completes (as for a temporary it cannot place), which stays under the peak: the sum, with the input,
    the second ``y``, ``e``'s output and the sum = 4 activations (5 if it were held to the end)."""
    assert _peaks(_Orphan()) == (4, 4)


class _Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.r = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.r(x)
        return torch.sigmoid(h) * 2


class _GatedLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_Gated() for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def test_a_name_of_a_block_called_in_a_loop_is_held_until_that_block_returns() -> None:
    """Every iteration runs the same forward from the same line (one frame id): each block's module
    call bounds its frame. During the second or third block's product: the input, the previous ``x``
    (its name holds it until the rebinding completes), ``h`` (held by its name until the block
    returns), the sigmoid and the product = 5 activations (4 if ``h`` were freed at its last read)."""
    assert _peaks(_GatedLoop()) == (5, 5)


class _WrappedCall(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner, self.c, self.d = _Unit(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(self.inner(x))  # inner's result: an argument of c, read on this line only
        return self.d(y) + y


def test_a_result_returned_into_a_line_and_read_only_there_is_a_temporary() -> None:
    """``inner``'s result comes back into a line that binds ``y`` but is read only by that line's own
    outermost call: a temporary, freed when ``c`` returns (the name holds ``c``'s result). During the
    sum: x, y, ``d``'s output and the sum = 4 activations (5 if ``inner``'s result were held by ``y``)."""
    assert _peaks(_WrappedCall()) == (4, 4)


class _AugmentedByAFunction(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y += relu(x)  # relu allocates its result; only the add runs in place on y
        return y


def test_only_the_augmented_operator_of_its_line_runs_in_place() -> None:
    """``y += relu(x)``: the traced add writes into ``y``, but ``relu(x)`` on the same line is a new
    tensor: the input, ``y`` and relu's result = 3 activations (taking relu as in place on ``x``
    would say 2)."""
    assert _peaks(_AugmentedByAFunction()) == (3, 3)


class _UnreadElement(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d, self.e = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.f = nn.Conv2d(1, 4, 1)  # four activations out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = (self.b(x), self.e(self.c(y)))[1]  # b's result is built into a tuple and never read
        y = self.d(y)  # the name is rebound on another line
        return self.f(y)


def test_an_unread_result_of_a_binding_line_is_not_held_to_the_frame_s_end() -> None:
    """``b``'s result is not the statement's value and no node reads it: it goes with the
    statement's tuple. During ``f``: the input, ``y`` (``d``'s output) and ``f``'s 4-activation output
    = 6 (holding ``b``'s result to the end of ``forward`` says 7)."""
    assert _peaks(_UnreadElement()) == (6, 6)


class _Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = self.a(x).relu(), self.b(x)
        return self.c(p + q)


def test_tuple_targets_of_as_many_items_hold_each_item_s_value() -> None:
    """``p, q = a(x).relu(), b(x)``: ``p`` holds the ``relu``, ``q`` the second conv, both to the frame's
    end. During ``c``: the input, ``p``, ``q``, the sum and ``c``'s output = 5 activations (freeing ``p`` and
    ``q`` at their last read, as before tuple targets bound values, says 3)."""
    assert _peaks(_Pair()) == (5, 5)


class _PairLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(1, 1, 1) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            p, q = block(x), block(x).relu()
            x = p + q
        return x


def test_tuple_items_bound_in_a_loop_are_released_by_the_next_iteration() -> None:
    """Each iteration rebinds ``p`` and ``q`` once both items are made: during the third's ``relu``, the
    input (the caller's), ``x`` (the second sum), the second iteration's ``p`` and ``q``, the new ``p``, the
    second conv and its ``relu`` = 7 activations (releasing the old items when the line starts says 5)."""
    assert _peaks(_PairLoop()) == (7, 7)


class _OneLineBodies(nn.Module):
    """``_Rebind`` and ``_Loop`` with their statements in the bodies of one-line compound statements."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.blocks = nn.ModuleList([nn.Conv2d(1, 1, 1) for _ in range(3)])
        self.rebind = True

    # fmt: off
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks: y = relu(block(x))  # noqa: E701
        if self.rebind: y = self.c(self.b(y))  # noqa: E701, SIM108
        else: y = self.a(y)  # noqa: E701
        return self.head(y)

    def head(self, y: torch.Tensor) -> torch.Tensor: return self.a(y)
    # fmt: on


def test_statements_in_the_bodies_of_one_line_compound_statements_bind_as_on_their_own_lines() -> None:
    """Each line is read as the statement its body runs: the loop's ``y`` is released by the next iteration
    (4 activations during the third), the old ``y`` is held until ``c`` rebinds it (4 during ``c``); read
    as lines that bind nothing, each ``y`` would be freed at its last read (3)."""
    assert _peaks(_OneLineBodies()) == (4, 4)


class _HelperInLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(1, 1, 1) for _ in range(3))

    def block(self, conv: nn.Module, t: torch.Tensor) -> torch.Tensor:
        return relu(conv(t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = self.block(conv, x)
        return x


def test_a_value_a_function_returns_in_a_loop_is_held_until_the_next_run_rebinds_it() -> None:
    """Every run of the loop's line calls ``block`` from the same line: a stack trace's text is the same for all
    of them, so only the capture's count of the line's runs tells that the second call reads what the first
    returned into ``x``. During the second ``relu``: the input, the first result (held by ``x`` until the line
    rebinds it), the convolution's output and the ``relu``'s = 4 activations (freed at its last read: 3)."""
    assert _peaks(_HelperInLoop()) == (4, 4)


class _Stepped(nn.Module):
    """A :class:`~tests.strategies.RandomNet` whose forward runs each block through a method of its own, called
    from one line of a loop: the same tensors held by the same names as the net's own forward, one frame down."""

    def __init__(self, net: RandomNet) -> None:
        super().__init__()
        self.net = net

    def step(self, kind: str, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if kind == "residual":
            return x + block(x)
        if kind == "concat":
            return torch.cat([block[0](x), relu(block[1](x))], dim=1)
        return block(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        for kind, block in zip(net.kinds, net.blocks, strict=True):
            x = self.step(kind, block, x)
        x = {1: adaptive_avg_pool1d, 2: adaptive_avg_pool2d, 3: adaptive_avg_pool3d}[net.dims](x, 1)
        return net.head(torch.flatten(x, 1))


@settings(max_examples=examples(20), deadline=None)
@given(random_nets(), st.booleans())
def test_blocks_run_through_a_method_in_a_loop_are_estimated_as_written_inline(
    case: tuple[RandomNet, tuple[int, ...]], train: bool
) -> None:
    """Eager Python holds the same tensors in both writings (a block's input in the loop's name until the line
    rebinds it, the method's argument besides): the inference peak and every training peak are the same. Without
    the runs of the loop's line counted, the method's result was freed at its last read (up to one activation
    under)."""
    net, shape = case
    net.train(train)
    inline, stepped = (crawl_module(model, shape, batch_size=2).memory for model in (net, _Stepped(net)))
    assert inline is not None and stepped is not None
    assert stepped.activation_peak_bytes == inline.activation_peak_bytes
    assert [t.peak_bytes for t in stepped.training] == [t.peak_bytes for t in inline.training]


class _TwoRelus(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.ReLU(), nn.ReLU()


class _Grandchild(nn.Module):
    """A forward calling its child's modules directly (the child's own forward never runs), and one module twice."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.c = _TwoRelus(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner.a(x * 2)
        y = self.inner.b(y)
        return self.c(self.c(y * 2))


def test_an_argument_is_held_until_the_call_it_was_given_to_returns() -> None:
    """``x * 2`` is an argument of ``inner.a``'s call only, ``y * 2`` of the first call of ``c`` only: each is
    freed when that call returns. Read from module paths, ``inner`` looked called once around both of its
    modules and ``c`` once around its two calls: each argument held one call longer. The peak, during ``c``'s
    second call: the input, ``y`` (held by its name), that call's argument and its result = 4 activations (5 with
    ``y * 2`` held through it)."""
    assert _peaks(_Grandchild()) == (4, 4)


class _Listed(nn.Module):
    """Branches appended to a list, concatenated, then more work in the same frame: the list still holds them."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(1, 1, 1) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for conv in self.convs:
            outs.append(conv(x))
        y = torch.cat(outs, dim=1)
        return relu(y * 2)


def test_values_appended_to_a_list_are_held_until_the_frame_returns() -> None:
    """During the ``relu``: the input, the two branches (held by ``outs``), ``y`` (two activations), ``y * 2``
    (two) and the ``relu``'s result (two) = 9 activations; freed at the ``cat``, the branches would leave 7."""
    assert _peaks(_Listed()) == (9, 9)


class _Aggregated(nn.Module):
    """An aggregation block (HGNet, VoVNet): each layer's output appended from its name, then concatenated, then
    more work while the list still holds them."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(1, 1, 1) for _ in range(2))
        self.aggregation = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = [x]
        for layer in self.layers:
            x = layer(x)
            output.append(x)
        x = torch.cat(output, dim=1)
        return relu(self.aggregation(x))


def test_what_a_call_reads_through_a_list_s_name_is_held_until_the_frame_returns() -> None:
    """During the ``relu``: the input, the two layers' outputs (held by ``output``), the concatenation (three
    activations, held by ``x``), the aggregation's output and the ``relu``'s = 8 activations; the layers' outputs
    freed at the ``cat`` would leave 6."""
    assert _peaks(_Aggregated()) == (8, 8)


class _AppendingTo(nn.Module):
    """Appends each layer's output to the list it is given, then concatenates it (VoVNet's ``SequentialAppendList``)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(1, 1, 1) for _ in range(2))

    def forward(self, x: torch.Tensor, concat_list: list[torch.Tensor]) -> torch.Tensor:
        for layer in self.layers:
            concat_list.append(layer(concat_list[-1]))
        return torch.cat(concat_list, dim=1)


class _CallerHeldList(nn.Module):
    """VoVNet's ``OsaBlock``: the caller's list, handed to a module that appends to it, still holds what it got."""

    def __init__(self) -> None:
        super().__init__()
        self.mid = _AppendingTo()
        self.concat = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = [x]
        x = self.mid(x, output)
        x = self.concat(x)
        return relu(x) + output[0]


def test_a_list_handed_to_a_call_holds_what_the_call_appended_until_the_caller_returns() -> None:
    """During ``concat``: the input (also held by ``output``), the two layers' outputs (held by the caller's
    ``output`` after ``mid`` returned), the concatenation (three activations) and ``concat``'s output = 7
    activations; the layers' outputs freed when ``mid`` returns would leave 6 (5 at ``concat``, 6 at the sum)."""
    assert _peaks(_CallerHeldList()) == (7, 7)


class _Chained(nn.Module):
    """Each layer reads the last item of the list it appends to, on one line a loop runs again."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(1, 1, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for layer in self.layers:
            outs.append(layer(outs[-1]))
        return relu(torch.cat(outs, dim=1) * 2)


def test_an_item_read_by_the_next_run_of_its_line_is_still_held_by_the_list() -> None:
    """During the ``relu``: the input, the three layers' outputs (held by ``outs``), the concatenation's double and
    the ``relu``'s result (four activations each) = 12 activations; the first two layers' outputs freed at their
    read by the next run of the line would leave 10."""
    assert _peaks(_Chained()) == (12, 12)


class _Branches(nn.Module):
    """Two branches on the block's argument, concatenated (Inception's mixed blocks, DPN's paths)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(channels, 1, 1), nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.a(x)
        x1 = self.b(x)
        return torch.cat((x0, x1), 1)


class _SequencedBranches(nn.Module):
    """The blocks called by ``nn.Sequential``'s loop: the root's ``x`` is not what its line passes to each block."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(_Branches(1), _Branches(2), _Branches(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def test_a_name_the_caller_passes_through_torch_s_forward_holds_nothing_of_the_callee() -> None:
    """A block called by ``nn.Sequential`` gets the previous block's output, not the root's ``x``: the root's name
    holds nothing a block reads. Peak 7 activations, at the last block's ``cat``: the root's input, the loop's (the
    second block's output, two), the two branches and the concatenation (two); the second block's input held to
    the end by the root's ``x`` would say 9."""
    assert _peaks(_SequencedBranches()) == (7, 7)


class _Rebinding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = relu(x)
        return self.conv(x)


class _CallsRebinding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block, self.tail = _Rebinding(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return self.tail(y) * 2


def test_a_parameter_bound_again_is_the_callee_s_own_value() -> None:
    """``x = relu(x)`` in the block: what ``self.conv(x)`` reads is the block's own value, gone when the block
    returns, not the caller's ``x``. Peak 4 activations, at the product: the input, ``y``, the ``tail``'s output and
    the product; the ``relu``'s output held by the caller's ``x`` would say 5."""
    assert _peaks(_CallsRebinding()) == (4, 4)


class _Helped(nn.Module):
    """Swin's block: ``x + self._attn(self.norm1(x))``, a method given a value its caller's line made."""

    def __init__(self, rebinds: bool) -> None:
        super().__init__()
        self.norm, self.conv, self.rebinds = nn.ReLU(), nn.Conv2d(1, 1, 1), rebinds

    def _attn(self, y: torch.Tensor) -> torch.Tensor:
        if self.rebinds:
            y = relu(y)
            return self.conv(y) * 2
        z = relu(y)
        return self.conv(z) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._attn(self.norm(x))


@pytest.mark.parametrize(("rebinds", "peak"), [(False, 5), (True, 4)])
def test_a_value_passed_to_a_method_is_held_by_its_parameter_until_it_returns(rebinds: bool, peak: int) -> None:
    """During the product: the input, the ``norm``'s output (held by ``y`` until ``_attn`` returns), ``z``, the
    conv's output and the product = 5 activations; where ``_attn`` binds ``y`` again, the ``norm``'s output goes
    then: 4."""
    assert _peaks(_Helped(rebinds)) == (peak, peak)
