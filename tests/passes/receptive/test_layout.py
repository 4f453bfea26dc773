"""Layout rules: stacking, integer and flattened indexing, reshapes of small dims, permutes given as
one tuple, matmul against a parameter — against hand-worked fields and the gradient footprint."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from tests.passes.receptive.helpers import rf_report, rule_outcomes
from tests.passes.receptive.test_oracle import Layout, footprint
from torchscan.passes.receptive import DEFAULT_RULES, Marker, RField, receptive_fields
from torchscan.passes.receptive.geometry import Field, Unsupported
from torchscan.passes.receptive.propagate import _identity
from torchscan.passes.receptive.table import Operand
from torchscan.records import OpCall, TensorSpec


def _fields(model: nn.Module, shape: tuple[int, ...]) -> dict[str, Any]:
    report = rf_report(model, shape)
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == [], report.diagnostics
    return receptive_fields(report.records).outcomes


def _last(model: nn.Module, shape: tuple[int, ...]) -> Field:
    """The field of the model's output."""
    report = rf_report(model, shape)
    fields = receptive_fields(report.records)
    (output,) = [n for n in report.records.nodes if n == "output"]
    (last,) = report.records.predecessors(output)
    field = fields.outcomes[last]
    assert isinstance(field, Field), (field, fields.diagnostics)
    return field


def _footprint(model: nn.Module, shape: tuple[int, ...], index: tuple[Any, ...]) -> list[tuple[int, int]]:
    """Per spatial dim, the first and last input position with a non-zero gradient of
    ``model(x)[index]`` (positive weights, zero biases, an all-ones input)."""
    model = model.double().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
    x = torch.ones((1, *shape), dtype=torch.float64, requires_grad=True)
    model(x)[index].sum().backward()
    nonzero = (x.grad[0].abs().sum(0) > 0).nonzero()
    return [(int(nonzero[:, j].min()), int(nonzero[:, j].max())) for j in range(len(shape) - 1)]


class Select(nn.Module):
    def __init__(self, row: int) -> None:
        super().__init__()
        self.row = row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.row]


@pytest.mark.parametrize("row", [0, 3, -2, -9])
def test_selecting_a_row_fixes_its_field(row: int) -> None:
    """A 3×3 conv (padding 1) on 9×8, then ``x[:, :, row]``: every output column ``j`` reads rows
    ``r − 1 … r + 1`` (``r = row mod 9``) and columns ``j − 1 … j + 1`` — the footprint of its
    gradient wherever the window lies inside the input."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Select(row))
    field = _last(model, (1, 9, 8))
    r = row % 9
    assert field.axes == (None, -1) and field.sizes == (1, 8)
    assert [field.spans[0].extent_at(j) for j in range(8)] == [(r - 1, r + 1)] * 8
    for j in range(1, 7):
        expected = [(max(r - 1, 0), min(r + 1, 8)), (j - 1, j + 1)]
        assert _footprint(model, (1, 9, 8), (0, slice(None), j)) == expected
        assert field.spans[1].extent_at(j) == (j - 1, j + 1)


class Tokens(nn.Module):
    """Flatten the grid into tokens, index the token axis, unflatten back."""

    def __init__(self, index: slice) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        return x.flatten(2)[:, :, self.index].unflatten(2, spatial)


@pytest.mark.parametrize("index", [slice(None), slice(0, None), slice(0, 72), slice(None, None, 1)])
def test_whole_slices_of_tokens_keep_the_field(index: slice) -> None:
    """Any slice that keeps every token (``[0:]``, ``[0:72]``, ``[::1]`` of 9·8 tokens) keeps the
    field: a 3×3 conv's, then a second 3×3 conv's 5×5."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Tokens(index), nn.Conv2d(2, 2, 3, padding=1))
    field = _last(model, (1, 9, 8))
    assert [span.summary().size for span in field.spans] == [5, 5]
    assert _footprint(model, (1, 9, 8), (0, slice(None), 4, 4)) == [(2, 6), (2, 6)]


class CropTokens(Tokens):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)[:, :, self.index]


@pytest.mark.parametrize("index", [slice(1, None), slice(0, 71), slice(0, None, 2)])
def test_cropping_tokens_is_refused(index: slice) -> None:
    """A slice that drops tokens cannot be followed per spatial dim: the field stops there."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), CropTokens(index))
    report = rf_report(model, (1, 9, 8))
    assert "rf-unsupported" in {d.code for d in report.diagnostics}


class RoundTrip(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], -1).reshape(x.shape)


@pytest.mark.parametrize("shape", [(1, 2, 2), (1, 2, 5), (1, 3, 2)])
def test_reshape_round_trip_of_small_dims(shape: tuple[int, ...]) -> None:
    """A reshape round trip keeps a spatial dim of size 2 on its axis: a 3×3 conv (padding 1)
    after it sees the field of both convs, 5 along every dim of size > 1."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), RoundTrip(), nn.Conv2d(2, 2, 3, padding=1))
    field = _last(model, shape)
    assert field.axes == (-2, -1)
    assert [span.summary().size for span in field.spans] == [5, 5]


class Permute(nn.Module):
    def __init__(self, as_tuple: bool) -> None:
        super().__init__()
        self.as_tuple = as_tuple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.as_tuple:
            return x.permute((0, 2, 3, 1)).permute((0, 3, 1, 2))
        return x.permute(0, 2, 3, 1).permute(0, 3, 1, 2)


@pytest.mark.parametrize("as_tuple", [True, False])
def test_permute_dims_as_one_tuple_or_several(as_tuple: bool) -> None:
    """``x.permute((0, 2, 3, 1))`` and ``x.permute(0, 2, 3, 1)`` move the axes alike: a round trip
    keeps the 3×3 conv's field on the last two axes."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), Permute(as_tuple), nn.Conv2d(2, 2, 3))
    field = _last(model, (1, 9, 8))
    assert field.axes == (-2, -1)
    assert [span.summary().size for span in field.spans] == [5, 5]


class FirstTransposed(nn.Module):
    def __init__(self, method: bool) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[0].t() if self.method else torch.t(x[0])


@pytest.mark.parametrize("method", [True, False])
def test_transposing_a_matrix_moves_its_positions_first(method: bool) -> None:
    """A 3-wide conv1d on 9 positions (2 channels), then sample 0 transposed, ``(2, 7) -> (7, 2)``:
    the positions are now the first of two dims (axis -2), each still reading 3 inputs."""
    field = _last(nn.Sequential(nn.Conv1d(1, 2, 3), FirstTransposed(method)), (1, 9))
    assert field.axes == (-2,)
    assert [span.summary().size for span in field.spans] == [3]


class SumChannels(nn.Module):
    def __init__(self, last: bool) -> None:
        super().__init__()
        self.last = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).sum(-1) if self.last else x.sum(1)


@pytest.mark.parametrize("last", [True, False])
def test_summing_the_channels_away_keeps_the_field_on_the_positions(last: bool) -> None:
    """A 3×3 conv on 9×8, then its channels summed away (``x.sum(1)``, or ``.sum(-1)`` channels last,
    which moves rows and columns from axes -3, -2 to -2, -1): each output reads a 3×3 window."""
    field = _last(nn.Sequential(nn.Conv2d(1, 2, 3), SumChannels(last)), (1, 9, 8))
    assert field.axes == (-2, -1)
    assert [span.summary().size for span in field.spans] == [3, 3]


class Project(nn.Module):
    """Tokens (B, HW, C) times a (C, D) parameter, back to (B, D, H, W)."""

    def __init__(self, left: bool) -> None:
        super().__init__()
        self.left = left
        self.proj = nn.Parameter(torch.ones(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)
        mixed = tokens @ self.proj if self.left else (self.proj.t() @ tokens.transpose(1, 2)).transpose(1, 2)
        return mixed.transpose(1, 2).unflatten(2, x.shape[2:])


@pytest.mark.parametrize("left", [True, False])
def test_matmul_with_a_parameter_keeps_the_field(left: bool) -> None:
    """``tokens @ W`` mixes features only (the contracted axis holds no position): the field is the
    3×3 conv's before it, then 5×5 after a second conv."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), Project(left), nn.Conv2d(3, 2, 3))
    field = _last(model, (1, 9, 8))
    assert [span.summary().size for span in field.spans] == [5, 5]


class Scores(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)
        return tokens @ tokens.transpose(1, 2)


def test_matmul_of_two_input_dependent_operands_is_global() -> None:
    """Attention scores ``q @ kᵀ`` pair every position with every other: global."""
    outcomes = _fields(nn.Sequential(nn.Conv2d(1, 2, 3), Scores()), (1, 6, 6))
    assert Marker.GLOBAL in outcomes.values()


class SquareScores(nn.Module):
    """Scores of two different projections whose token and feature counts agree (4 tokens of 4
    features): both operands have the same shape, told apart by their order."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k = nn.Conv2d(1, 4, 1), nn.Conv2d(1, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x).flatten(2).transpose(1, 2) @ self.k(x).flatten(2)


def test_matmul_of_two_operands_of_one_shape_is_global() -> None:
    outcomes = _fields(SquareScores(), (1, 2, 2))
    assert Marker.GLOBAL in outcomes.values()


def test_matmul_with_a_vector_is_refused() -> None:
    """A vector operand drops an axis of the other (``[.., m, k] @ [k]`` is ``[.., m]``), which the
    field's axes do not follow: refused, whichever side the vector is on."""
    maps, vector = torch.ones(1, 2, 5, 4), torch.ones(4)
    assert rule_outcomes(torch.matmul, maps, vector) == ("matmul of a vector",) * 2
    assert rule_outcomes(torch.matmul, vector, maps.transpose(2, 3)) == ("matmul of a vector",) * 2


@pytest.mark.parametrize(("conv", "shape"), [(nn.Conv1d(1, 2, 3), (1, 7)), (nn.Conv2d(1, 2, (1, 3)), (1, 1, 7))])
def test_flattening_one_moving_dim_into_features_is_global(conv: nn.Module, shape: tuple[int, ...]) -> None:
    """A signal of 5 positions (a 1-D one, or a 2-D one of height 1) and 2 channels flattened into
    10 features before a classifier: every feature mixes into the next layer, the field is global."""
    outcomes = _fields(nn.Sequential(conv, nn.Flatten()), shape)
    assert outcomes["_1"] is Marker.GLOBAL, outcomes


A = torch.ones(1, 2, 5, 4)


@pytest.mark.parametrize(
    "case",
    [(torch.stack, [A, A], 0), (torch.stack, [A, A], 1), (torch.stack, [A, A], -1), (torch.cat, [A, A], 1)],
    ids=["stack 0", "stack 1", "stack -1", "cat 1"],
)
def test_stack_and_cat_by_name_and_by_position(case: tuple) -> None:
    """Stacking along a new axis moves the spatial axes left of it one further from the end
    (``dim = 0`` or ``1``: none; ``dim = −1``: both); the same call with its ``dim`` by position
    gives the same field."""
    function, tensors, dim = case
    by_name, by_position = rule_outcomes(function, tensors, dim)
    assert by_position == by_name
    assert isinstance(by_name, Field)
    assert by_name.axes == ((-3, -2) if (function is torch.stack and dim == -1) else (-2, -1))


class _Attend(nn.Module):
    """Self-attention over the tokens of a 3×3 conv's 4×4 map, batch first or sequence first."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.conv = nn.Conv2d(1, 4, 3)
        self.attn = nn.MultiheadAttention(4, 1, batch_first=batch_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        tokens = tokens if self.batch_first else tokens.transpose(0, 1)
        return self.attn(tokens, tokens, tokens, need_weights=False)[0]


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_over_tokens_is_global(batch_first: bool) -> None:
    """Each output token attends to all 16: every output depends on the whole 6×6 input."""
    outcomes = _fields(_Attend(batch_first), (1, 6, 6))
    assert outcomes["attn"] is Marker.GLOBAL, outcomes


class Gather(nn.Module):
    def __init__(self, index: Any) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.index]


@pytest.mark.parametrize("index", [torch.tensor([0, 2, 5]), True], ids=["rows", "bool"])
def test_indexing_with_a_tensor_or_a_bool_is_refused_as_such(index: Any) -> None:
    """Rows picked by a tensor of positions (0, 2, 5) are not a window, and ``x[:, :, True]`` adds an
    axis as ``None`` would but is advanced indexing: the rule refuses both for that reason, before
    reading the index as a slice (a plain slice of rows, ``[::2]``, is a stride and is followed)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Gather(index))
    report = rf_report(model, (1, 9, 8))
    messages = [d.message for d in report.diagnostics if d.code == "rf-unsupported"]
    assert len(messages) == 1 and "advanced (tensor or boolean) indexing" in messages[0], messages


class NewAxis(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, None]


def test_a_new_axis_before_the_spatial_dims_moves_them_by_one() -> None:
    """``x[:, :, None]`` on (1, 2, 9, 8) gives (1, 2, 1, 9, 8): the rows stay on axis −2, the columns
    on −1, with the 3×3 conv's field."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), NewAxis())
    field = _last(model, (1, 9, 8))
    assert field.axes == (-2, -1) and field.sizes == (9, 8)
    assert [span.summary().size for span in field.spans] == [3, 3]


class Softmax(nn.Module):
    def __init__(self, spelling: str) -> None:
        super().__init__()
        self.spelling = spelling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spelling == "method":
            return x.softmax(1)
        if self.spelling == "log_method":
            return x.log_softmax(1)
        return torch.softmax(x, 1) if self.spelling == "torch" else torch.nn.functional.softmax(x, 1)


@pytest.mark.parametrize("spelling", ["method", "log_method", "torch", "functional"])
def test_softmax_over_channels_by_position_keeps_the_field(spelling: str) -> None:
    """A softmax over the channel dim, given by position in each spelling, mixes no position: the
    3×3 conv's field stays (3, 3) on both spatial dims."""
    field = _last(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Softmax(spelling)), (1, 6, 6))
    assert [span.summary().size for span in field.spans] == [3, 3]


# size-1 spatial dims through views ----------------------------------------------------------------


def _same_after_a_round_trip(kind: str) -> nn.Module:
    """The model hypothesis found: a 3-wide conv (stride 2, dilation 3) that shrinks 8 positions to
    one, a view round trip of that size-1 dim, a 2-wide ``"same"`` conv (torch pads 0 before, 1 after)."""
    return nn.Sequential(
        nn.Conv1d(1, 2, 1),
        nn.Sequential(nn.Conv1d(2, 2, 3, stride=2, dilation=3), nn.ReLU()),
        Layout(kind, 1),
        nn.Sequential(nn.Conv1d(2, 2, 2, padding="same"), nn.ReLU()),
    )


@pytest.mark.parametrize("kind", ["flatten", "reshape", "unsqueeze", "transpose", "permute"])
def test_a_round_trip_keeps_a_size_one_dim_on_its_axis(kind: str) -> None:
    """On 8 inputs the strided conv leaves one unit, ``L = 2i``, ``R = 2i + 6``. The round trip
    (``flatten(2).unflatten``, ``reshape``/``view``, ``unsqueeze``/``squeeze``, or a transpose) keeps
    that size-1 dim on its axis, so the ``"same"`` conv still widens it — unit ``i`` reads units
    ``i, i + 1``: ``L = 2i``, ``R = 2i + 8`` (size 9, jump 2, start 0; a view used to drop the axis
    and leave 7). On 26 inputs the footprint of the central unit 5 is ``10 … 18``."""
    model = _same_after_a_round_trip(kind)
    field = _last(model, (1, 8))
    assert field.axes == (-1,) and field.sizes == (1,) and not field.flat
    (span,) = field.spans
    assert [span.extent_at(i) for i in range(4)] == [(0, 8), (2, 10), (4, 12), (6, 14)]
    assert span.summary() == RField(size=9, jump=Fraction(2), start=0)
    assert footprint(model, (1, 26)) == ([(10, 18)], (5,))


@pytest.mark.parametrize("kind", ["flatten", "reshape", "unsqueeze"])
@pytest.mark.parametrize("kernel", [(8, 1), (1, 8), (8, 8)], ids=["rows", "columns", "both"])
def test_a_round_trip_of_a_grid_with_size_one_dims(kind: str, kernel: tuple[int, int]) -> None:
    """A conv of kernel ``kernel`` on 8×8 leaves one unit along each dim of kernel 8 (field
    ``[i, i + 7]``) and 8 along a dim of kernel 1; after the round trip a 3×3 conv (padding 1) adds
    ``[−1, +1]`` along both dims: ``[i − 1, i + 8]`` (size 10) or ``[i − 1, i + 1]`` (size 3)."""
    model = nn.Sequential(nn.Conv2d(1, 2, kernel), Layout(kind, 2), nn.Conv2d(2, 2, 3, padding=1))
    field = _last(model, (1, 8, 8))
    assert field.axes == (-2, -1) and not field.flat
    assert field.sizes == tuple(9 - k for k in kernel)
    assert [span.extent_at(2) for span in field.spans] == [(1, 10) if k == 8 else (1, 3) for k in kernel]


class Squeezed(nn.Module):
    """``x.squeeze(-1)`` (a 2-D map of width 1 to a 1-D signal) or ``x.unsqueeze(-1)`` (the reverse)."""

    def __init__(self, unsqueeze: bool) -> None:
        super().__init__()
        self.unsqueeze = unsqueeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) if self.unsqueeze else x.squeeze(-1)


@pytest.mark.parametrize(("kernel", "size"), [((3, 1), 10), ((1, 3), 8)])
def test_unsqueeze_puts_the_new_axis_where_its_dim_says(kernel: tuple[int, int], size: int) -> None:
    """A conv of 8 on 8 inputs leaves one unit (``[i, i + 7]``); ``unsqueeze(-1)`` adds the new axis
    after it, so the positions are the rows (axis −2) of the 2-D conv after it: a kernel (3, 1)
    (padding (1, 0)) widens them to ``[i − 1, i + 8]``, a kernel (1, 3) (padding (0, 1)) does not —
    though the shapes alone, (N, 2, 1) -> (N, 2, 1, 1), could put them on either size-1 axis."""
    padding = tuple(k // 2 for k in kernel)
    model = nn.Sequential(nn.Conv1d(1, 2, 8), Squeezed(True), nn.Conv2d(2, 2, kernel, padding=padding))
    field = _last(model, (1, 8))
    assert field.axes == (-2,)
    assert field.spans[0].summary().size == size


def test_squeeze_removes_the_axis_its_dim_names() -> None:
    """A 8×8 conv on 8×8 leaves one unit, (N, 2, 1, 1); ``squeeze(-1)`` removes the columns' axis, so
    the 1-D conv (3, padding 1) after it widens the rows (``[i − 1, i + 8]``, size 10) and the
    columns keep the 8×8 conv's 8, without an axis."""
    model = nn.Sequential(nn.Conv2d(1, 2, 8), Squeezed(False), nn.Conv1d(2, 2, 3, padding=1))
    field = _last(model, (1, 8, 8))
    assert field.axes == (-1, None) and field.sizes == (1, 1)
    assert [span.summary().size for span in field.spans] == [10, 8]


class TokensOfARow(nn.Module):
    """A map of height 1 flattened into tokens, then a 3-wide conv (padding 1), a crop, a pick, a
    3-wide ``Tensor.unfold``, or a sum with the map squeezed to its columns."""

    def __init__(self, then: str) -> None:
        super().__init__()
        self.then = then
        self.conv = nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2)
        if self.then == "conv":
            return self.conv(tokens)
        if self.then == "unfold":
            return tokens.unfold(-1, 3, 1)
        if self.then == "sum":
            return tokens + x.squeeze(2)
        return tokens[:, :, 1:] if self.then == "crop" else tokens[:, :, 2]


_THEN = {  # then: the columns of units 1 and 2, the number of columns
    "conv": ([(0, 4), (1, 5)], 5),
    "crop": ([(2, 4), (3, 5)], 4),
    "pick": ([(2, 4), (2, 4)], 1),
    "unfold": ([(1, 5), (2, 6)], 3),
    "sum": ([(1, 3), (2, 4)], 5),
}


@pytest.mark.parametrize("then", _THEN)
def test_tokens_of_a_row_are_its_columns(then: str) -> None:
    """A 8×3 conv on 8×7 leaves a 1×5 map (columns ``[j, j + 2]``); its 5 tokens run along the
    columns only, so a window (3, padding 1: ``[j − 1, j + 3]``), a crop (``[1:]``: ``[j + 1, j + 3]``),
    a pick (``[2]``: ``[2, 4]`` for every unit) or an unfold (3: ``[j, j + 4]``) over them is one over
    the columns, and the map squeezed to its columns adds to them unit by unit (``[j, j + 2]``);
    the one row keeps the conv's ``[0, 7]``."""
    columns, count = _THEN[then]
    field = _last(nn.Sequential(nn.Conv2d(1, 2, (8, 3)), TokensOfARow(then)), (1, 8, 7))
    assert field.sizes == (1, count)
    assert [field.spans[1].extent_at(i) for i in (1, 2)] == columns
    assert field.spans[0].extent_at(0) == (0, 7)


class _Crop(nn.Module):
    """A crop behind a table keyed by a size when ``branch`` (a proxy is no key: torch.fx cannot trace
    it, the forward is recorded, where indexing is ``Tensor.__getitem__`` called as a method)."""

    narrow: ClassVar[dict[int, bool]] = {width: width < 2 for width in range(64)}

    def __init__(self, index: tuple[Any, ...], branch: bool) -> None:
        super().__init__()
        self.index, self.branch = index, branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch and self.narrow[x.shape[-1]]:
            return x
        return x[self.index]


@pytest.mark.parametrize(
    "index",
    [
        (slice(None), slice(None), slice(1, None), slice(None, -1)),
        (Ellipsis, slice(2, None, 2)),
        (Ellipsis, slice(-10, None), slice(None, None, 3)),
    ],
)
def test_indexing_in_a_recorded_forward_is_followed_as_in_a_traced_one(index: tuple[Any, ...]) -> None:
    def model(branch: bool) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 2, 3), _Crop(index, branch), nn.Conv2d(2, 2, 3, padding=1))

    traced, recorded = rf_report(model(False), (1, 16, 16)), rf_report(model(True), (1, 16, 16))
    assert [d.code for d in recorded.diagnostics] == ["capture-fallback"]
    assert [d.code for d in traced.diagnostics] == []
    fields = [(r.name, r.receptive_field, r.effective_stride, r.effective_padding) for r in traced.rows]
    assert [(r.name, r.receptive_field, r.effective_stride, r.effective_padding) for r in recorded.rows] == fields
    assert None not in {row.receptive_field for row in recorded.rows}


class ChannelWrite(nn.Module):
    """Writes a wider-field branch into half of the channels (``y[:, 4:] = …``), then a convolution;
    ``crop`` writes a shifted copy into part of the rows instead."""

    def __init__(self, crop: bool = False) -> None:
        super().__init__()
        self.crop = crop
        self.first = nn.Conv2d(2, 8, 3, padding=1)
        self.branch = nn.Conv2d(4, 4, 5, padding=2)
        self.last = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(x)
        if self.crop:
            y[:, :, 1:] = y[:, :, :-1] * 2
        else:
            y[:, 4:] = self.branch(y[:, :4].clone())  # a copy: autograd refuses a write into what the conv keeps
        return self.last(y)


def test_a_write_into_channels_merges_the_fields_as_the_gradient_says() -> None:
    """The hull of the written tensor's field (3 + 2) and the branch's (3 + 4 + 2): 9 × 9, the footprint
    of the centre unit."""
    field = _last(ChannelWrite(), (2, 17, 17))
    assert [span.summary().size for span in field.spans] == [9, 9]
    assert [span.extent_at(8) for span in field.spans] == [(4, 12), (4, 12)]
    assert _footprint(ChannelWrite(), (2, 17, 17), (0, slice(None), 8, 8)) == [(4, 12), (4, 12)]


def test_a_write_into_part_of_the_grid_is_refused() -> None:
    report = rf_report(ChannelWrite(crop=True), (2, 17, 17))
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == ["rf-unsupported"]
    assert "part of the spatial grid" in next(d.message for d in report.diagnostics if d.code == "rf-unsupported")


class _Attribute(nn.Module):
    """A 3×3 conv on an 8×6 map, then its positions swapped by an attribute (``.mT``, ``.T`` of sample 0) or by
    ``transpose`` (``spelled=False``), or the map read through ``.data`` / a complex spectrum's ``.real``."""

    def __init__(self, name: str, spelled: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.name, self.spelled = name, spelled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.name == "mT":
            return y.mT if self.spelled else y.transpose(-1, -2)
        if self.name == "T":
            return y[0].T if self.spelled else y[0].permute(2, 1, 0)
        if self.name == "real":
            spectrum = torch.fft.fft(y, dim=1)  # over the channels: every position kept
            return spectrum.real if self.spelled else spectrum
        return y.data if self.spelled else y


@pytest.mark.parametrize("name", ["mT", "T", "real", "data"])
def test_an_attribute_read_moves_positions_as_the_op_it_spells(name: str) -> None:
    """fx's ``getattr`` node of ``.mT`` / ``.T`` has the field of the transpose or permute it is; ``.real`` and
    ``.data`` keep every position."""
    attribute, spelled = (_last(_Attribute(name, spelled), (1, 8, 6)) for spelled in (True, False))
    assert attribute.axes == spelled.axes and attribute.spans == spelled.spans


def test_an_attribute_of_another_kind_is_not_followed() -> None:
    """fx records ``getattr`` unbound (``{"args": (x, name)}``); a name other than a view's is refused."""
    rule = DEFAULT_RULES.lookup(getattr)
    x = TensorSpec((1, 2, 5, 5), torch.float32)
    operands = (Operand(_identity((5, 5)), x),)
    for name, kept in (("real", True), ("grad", False), ("values", False)):
        call = OpCall("function", getattr, (x,), (x,), {"args": (x, name)})
        if kept:
            assert rule(call, operands) == operands[0].field
        else:
            with pytest.raises(Unsupported, match=repr(name)):
                rule(call, operands)
