"""Normalisations against the counting reference (``tests/reference/norm.py``) and hand-worked
numbers: BatchNorm (batch or running statistics, the running update, ``momentum=None``),
LayerNorm, GroupNorm, InstanceNorm, RMSNorm, LocalResponseNorm, ``F.normalize``.

Conventions (``torchscan/ops/norm.py``) against the reference's literal counts, each departure
checked exactly by the ``expected_*`` functions below:

- LayerNorm / GroupNorm / InstanceNorm FLOPs and every norm's DMAs (input, parameters and
  buffers once per element — the reference's passes re-read the input, ``Tally.distinct`` counts
  it once) are literal.
- **RMSNorm FLOPs: literal + N_in.** The reference squares (N), sums (N − R), divides for the mean
  (R), adds ε and takes the root (2R) and divides (N): ``3·N + 2·R``; the formula's ``4·N + 2·R``
  counts the mean's division once per element (reported in issue 18, not changed here).
- **BatchNorm**: FLOPs literal, except the running update in training (**− C + [momentum]**: the
  unbiased variance's division by ``n − 1`` (Bessel's correction, C) is not counted; ``1 − momentum``
  is counted once though it is hyperparameter arithmetic). DMAs **+ 1 + [momentum]** (ε and the
  momentum read as one element each) **− [training and tracked]** (the batch counter's increment
  read and written, counted as 1).
- **MACs** of norms are a convention with no multiply-accumulate behind most of them:
  ``N_in·(1 + [weight or bias])`` (one for normalising, one for the affine even when it only
  scales or only shifts; the reference's only MAC is the fused ``x̂·w + b``), plus ``2·N_in`` for
  BatchNorm's batch statistics (mean and variance passes).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, cost, crawled_cost, function_cost, module_cost, randn, spec
from tests.reference import norm as reference
from tests.reference.counting import Counted
from torchscan.records import Cost

aten = torch.ops.aten

PARAMETERS = ("input", "weight", "bias")
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def expected_group_norm(counted: Counted, weight: bool, bias: bool) -> Cost:
    """LayerNorm / GroupNorm / InstanceNorm: FLOPs and DMAs literal, MACs by convention."""
    tally = counted.tally
    n_in = tally.distinct("input")
    return Cost(flops=tally.flops, macs=n_in * (1 + (weight or bias)), dmas=tally.dmas(once=PARAMETERS))


def expected_rms_norm(counted: Counted, weight: bool) -> Cost:
    tally = counted.tally
    n_in = tally.distinct("input")
    return Cost(flops=tally.flops + n_in, macs=n_in * (1 + weight), dmas=tally.dmas(once=PARAMETERS))


def expected_batch_norm(
    counted: Counted, channels: int, affine: bool, batch_stats: bool, updated: bool, momentum: float | None
) -> Cost:
    tally = counted.tally
    n_in = tally.distinct("input")
    flops = tally.flops - (channels - (momentum is not None)) * updated
    macs = n_in * (1 + affine) + 2 * n_in * batch_stats
    dmas = tally.dmas(once=PARAMETERS + BUFFERS) + 1 + bool(momentum) - updated
    return Cost(flops=flops, macs=macs, dmas=dmas)


def _randomise(module: nn.Module, seed: int) -> None:
    with torch.no_grad():
        for offset, (name, tensor) in enumerate((*module.named_parameters(), *module.named_buffers())):
            if name == "num_batches_tracked":
                tensor.fill_(seed % 5)
            elif name == "running_var":
                tensor.copy_(randn(seed + offset, *tensor.shape).abs() + 0.5)
            else:
                tensor.copy_(randn(seed + offset, *tensor.shape))


@st.composite
def batch_norms(draw: st.DrawFn) -> tuple[nn.Module, torch.Tensor]:
    """A BatchNorm1d/2d/3d (affine or not, running statistics or not, momentum a number or None)
    in training or eval, and an input with more than one value per channel when it must have."""
    dims = draw(st.integers(0, 3))
    channels = draw(st.integers(1, 3))
    family = (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[dims]
    module = family(
        channels,
        momentum=draw(st.sampled_from([0.1, 0.5, None])),
        affine=draw(st.booleans()),
        track_running_stats=draw(st.booleans()),
        dtype=torch.float64,
    )
    seed = draw(st.integers(0, 2**31))
    _randomise(module, seed)
    module.train(draw(st.booleans()))
    spatial = [draw(st.integers(1, 3)) for _ in range(dims)]
    batch = draw(st.integers(1 if math.prod(spatial) > 1 else 2, 3))
    return module, randn(seed, batch, channels, *spatial)


@given(batch_norms())
def test_batch_norm_counts_as_the_reference(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    tracked = module.track_running_stats
    buffers = {name: tensor.clone() for name, tensor in module.named_buffers()}
    counted = reference.batch_norm(
        x,
        buffers.get("running_mean"),
        buffers.get("running_var"),
        module.weight,
        module.bias,
        module.training,
        module.momentum,
        module.eps,
        buffers.get("num_batches_tracked"),
    )
    twin = copy.deepcopy(module)
    with torch.no_grad():
        assert_same(counted.output, twin(x))
        got = module_cost(module, x)
    for name, value in counted.state.items():  # the running statistics moved as torch moved them
        torch.testing.assert_close(value, getattr(twin, name).to(value.dtype))
    batch_stats = module.training or not tracked
    updated = module.training and tracked
    assert got == expected_batch_norm(counted, x.shape[1], module.affine, batch_stats, updated, module.momentum)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("tracked", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_in_every_mode(training: bool, tracked: bool, affine: bool, momentum: float | None) -> None:
    """Every mode, on one input: eval without running statistics normalises by the batch's (as
    training does, without the update)."""
    module = nn.BatchNorm2d(3, momentum=momentum, affine=affine, track_running_stats=tracked, dtype=torch.float64)
    _randomise(module, 7)
    module.train(training)
    x = randn(7, 2, 3, 2, 2)
    buffers = {name: tensor.clone() for name, tensor in module.named_buffers()}
    counted = reference.batch_norm(
        x,
        buffers.get("running_mean"),
        buffers.get("running_var"),
        module.weight,
        module.bias,
        training,
        momentum,
        module.eps,
        buffers.get("num_batches_tracked"),
    )
    with torch.no_grad():
        assert_same(counted.output, copy.deepcopy(module)(x))
        got = module_cost(module, x)
    assert got == expected_batch_norm(counted, 3, affine, training or not tracked, training and tracked, momentum)


@given(st.integers(1, 3), st.integers(1, 3), st.booleans(), st.integers(0, 2**31))
def test_functional_batch_norm_in_eval(channels: int, length: int, affine: bool, seed: int) -> None:
    x = randn(seed, 2, channels, length)
    mean, var = randn(seed + 1, channels), randn(seed + 2, channels).abs() + 0.5
    weight, bias = (randn(seed + 3, channels), randn(seed + 4, channels)) if affine else (None, None)
    counted = reference.batch_norm(x, mean, var, weight, bias, training=False, momentum=0.1)
    assert_same(counted.output, F.batch_norm(x, mean, var, weight, bias, False, 0.1))
    got = function_cost(F.batch_norm, x, mean, var, weight, bias, False, 0.1)
    assert got == expected_batch_norm(counted, channels, affine, batch_stats=False, updated=False, momentum=0.1)


@st.composite
def layer_norms(draw: st.DrawFn) -> tuple[nn.LayerNorm, torch.Tensor]:
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    normalized = tuple(shape[len(shape) - draw(st.integers(1, len(shape))) :])
    affine = draw(st.booleans())
    module = nn.LayerNorm(
        normalized, elementwise_affine=affine, bias=affine and draw(st.booleans()), dtype=torch.float64
    )
    seed = draw(st.integers(0, 2**31))
    _randomise(module, seed)
    return module, randn(seed, *shape)


@given(layer_norms())
def test_layer_norm_counts_as_the_reference(case: tuple[nn.LayerNorm, torch.Tensor]) -> None:
    module, x = case
    counted = reference.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)
    with torch.no_grad():
        assert_same(counted.output, module(x))
        want = expected_group_norm(counted, module.weight is not None, module.bias is not None)
        assert module_cost(module, x) == want
        assert function_cost(F.layer_norm, x, module.normalized_shape, module.weight, module.bias) == want


@st.composite
def group_norms(draw: st.DrawFn) -> tuple[nn.GroupNorm, torch.Tensor]:
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    module = nn.GroupNorm(groups, channels, affine=draw(st.booleans()), dtype=torch.float64)
    seed = draw(st.integers(0, 2**31))
    _randomise(module, seed)
    spatial = draw(st.lists(st.integers(1, 3), max_size=3))
    batch = draw(st.integers(1 if math.prod(spatial) > 1 else 2, 2))  # torch wants more than one value
    return module, randn(seed, batch, channels, *spatial)


@given(group_norms())
def test_group_norm_counts_as_the_reference(case: tuple[nn.GroupNorm, torch.Tensor]) -> None:
    module, x = case
    counted = reference.group_norm(x, module.num_groups, module.weight, module.bias, module.eps)
    with torch.no_grad():
        assert_same(counted.output, module(x))
        want = expected_group_norm(counted, module.affine, module.affine)
        assert module_cost(module, x) == want
        assert function_cost(F.group_norm, x, module.num_groups, module.weight, module.bias) == want
        # the ATen spellings a decomposed model records: R = N·group
        aten = torch.ops.aten
        n, c, hxw = x.shape[0], x.shape[1], x[0, 0].numel()
        assert function_cost(aten.group_norm.default, x, module.num_groups, module.weight, module.bias) == want
        native = (x, module.weight, module.bias, n, c, hxw, module.num_groups, module.eps)
        assert function_cost(aten.native_group_norm.default, *native) == want


@st.composite
def instance_norms(draw: st.DrawFn) -> tuple[nn.Module, torch.Tensor]:
    """InstanceNorm1d/2d/3d: instance statistics (training, or no running statistics), or the
    running statistics in eval."""
    dims = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 3))
    tracked = draw(st.booleans())
    family = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)[dims - 1]
    module = family(channels, affine=draw(st.booleans()), track_running_stats=tracked, dtype=torch.float64)
    seed = draw(st.integers(0, 2**31))
    _randomise(module, seed)
    module.train(not tracked and draw(st.booleans()))
    spatial = [draw(st.integers(1, 3)) for _ in range(dims)]
    spatial[0] = max(spatial[0], 2)  # instance statistics need more than one value
    return module, randn(seed, draw(st.integers(1, 2)), channels, *spatial)


@given(instance_norms())
def test_instance_norm_counts_as_the_reference(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    with torch.no_grad():
        if module.track_running_stats and not module.training:  # normalised by the running statistics
            counted = reference.batch_norm(x, module.running_mean, module.running_var, module.weight, module.bias)
            want = expected_batch_norm(counted, x.shape[1], module.affine, False, False, module.momentum)
        else:
            counted = reference.instance_norm(x, module.weight, module.bias, module.eps)
            want = expected_group_norm(counted, module.affine, module.affine)
        assert_same(counted.output, module(x))
        assert module_cost(module, x) == want


@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.booleans(), st.integers(0, 2**31))
def test_rms_norm_counts_as_the_reference(shape: list[int], weighted: bool, seed: int) -> None:
    module = nn.RMSNorm(shape[-1:], eps=1e-6, elementwise_affine=weighted, dtype=torch.float64)
    _randomise(module, seed)
    x = randn(seed, *shape)
    counted = reference.rms_norm(x, module.normalized_shape, module.weight, 1e-6)
    with torch.no_grad():
        assert_same(counted.output, module(x))
        assert module_cost(module, x) == expected_rms_norm(counted, weighted)


@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**31))
def test_local_response_norm_counts_as_the_reference(channels: int, length: int, size: int, seed: int) -> None:
    """LocalResponseNorm: FLOPs literal (``N·(n + 4)``), no MACs, DMAs read the input once."""
    x = randn(seed, 2, channels, length)
    module = nn.LocalResponseNorm(size, alpha=0.5, beta=0.75, k=1.5)
    counted = reference.local_response_norm(x, size, 0.5, 0.75, 1.5)
    assert_same(counted.output, module(x))
    assert counted.tally.macs == 0
    assert module_cost(module, x) == Cost(flops=counted.tally.flops, dmas=counted.tally.dmas(once=["input"]))


def test_cross_map_lrn_counts_as_local_response_norm() -> None:
    """``nn.CrossMapLRN2d``, LocalResponseNorm's legacy form on 4-D inputs, takes the same steps: ``N·(n + 4)``
    FLOPs, its input read once, in a whole analysis too."""
    x = randn(0, 2, 5, 3, 4)
    want = module_cost(nn.LocalResponseNorm(3, 1e-4, 0.75, 1.0), x)
    assert module_cost(nn.CrossMapLRN2d(3, 1e-4, 0.75, 1.0), x) == want == Cost(flops=120 * 7, dmas=240)
    assert crawled_cost(nn.CrossMapLRN2d(3), x) == want


@pytest.mark.parametrize("training", [False, True])
def test_norms_end_to_end(training: bool) -> None:
    x = randn(0, 2, 4, 3, 5)
    batch_norm = nn.BatchNorm2d(4, dtype=torch.float64).train(training)
    counted = reference.batch_norm(
        x, torch.zeros(4), torch.ones(4), torch.ones(4), torch.zeros(4), training, 0.1, 1e-5, torch.tensor(0)
    )
    assert crawled_cost(batch_norm, x) == expected_batch_norm(counted, 4, True, training, training, 0.1)
    layer_norm = nn.LayerNorm([3, 5], dtype=torch.float64).train(training)
    counted = reference.layer_norm(x, [3, 5], torch.ones(3, 5), torch.zeros(3, 5))
    assert crawled_cost(layer_norm, x) == expected_group_norm(counted, True, True)
    group_norm = nn.GroupNorm(2, 4, dtype=torch.float64).train(training)
    counted = reference.group_norm(x, 2, torch.ones(4), torch.zeros(4))
    assert crawled_cost(group_norm, x) == expected_group_norm(counted, True, True)
    instance_norm = nn.InstanceNorm2d(4, dtype=torch.float64).train(training)
    assert crawled_cost(instance_norm, x) == expected_group_norm(reference.instance_norm(x), False, False)
    rms_norm = nn.RMSNorm(5, dtype=torch.float64).train(training)
    assert crawled_cost(rms_norm, x) == expected_rms_norm(reference.rms_norm(x, [5], torch.ones(5)), True)
    lrn = nn.LocalResponseNorm(3).train(training)
    counted = reference.local_response_norm(x, 3)
    assert crawled_cost(lrn, x) == Cost(flops=counted.tally.flops, dmas=counted.tally.dmas(once=["input"]))


# Hand-worked numbers on X = (2, 4, 3, 5), N = 120 elements. A group of n elements costs: mean n
# (n − 1 adds, 1 division), variance 3n (n subtracts, n squares, n − 1 adds, 1 division), ε add and
# root 2, normalise 2n (subtract, divide), scale n, shift n. MACs: N for normalising + N for the
# affine when there is one. DMAs: N reads + parameters + N writes.
X = spec(2, 4, 3, 5)


@pytest.mark.parametrize(
    ("target", "inputs", "attrs", "expected"),
    [
        # 24 rows of 5: 6·120 + 2·24 = 768, + scale 120 + shift 120 = 1008; DMAs 120 + 10 + 120
        (nn.LayerNorm, (X,), {"normalized_shape": (5,), "weight": spec(5), "bias": spec(5)}, Cost(1008, 240, 250)),
        # 8 groups of 15, no affine: 720 + 16 = 736
        (nn.LayerNorm, (X,), {"normalized_shape": (3, 5), "weight": None, "bias": None}, Cost(736, 120, 240)),
        # 24 rows, scale only: 768 + 120 = 888; DMAs 120 + 5 + 120
        (F.layer_norm, (X, spec(5)), {"normalized_shape": (5,), "weight": spec(5), "bias": None}, Cost(888, 240, 245)),
        (
            aten.native_layer_norm.default,
            (X,),
            {"normalized_shape": (5,), "weight": None, "bias": None},
            Cost(768, 120, 240),
        ),
        # 2 samples × 2 groups = 4 groups of 30: 720 + 8 + 240 = 968; DMAs 120 + 8 + 120
        (nn.GroupNorm, (X,), {"num_groups": 2, "weight": spec(4), "bias": spec(4)}, Cost(968, 240, 248)),
        # 2 × 4 = 8 groups of 15: 736
        (F.group_norm, (X,), {"num_groups": 4, "weight": None, "bias": None}, Cost(736, 120, 240)),
        (
            aten.native_group_norm.default,
            (X,),
            {"N": 2, "C": 4, "HxW": 15, "group": 2, "weight": None, "bias": None},
            Cost(728, 120, 240),
        ),
        # one group per (sample, channel): 8 groups of 15
        (nn.InstanceNorm2d, (X,), {"weight": None, "bias": None, "track_running_stats": False}, Cost(736, 120, 240)),
        (F.instance_norm, (X,), {"use_input_stats": True}, Cost(736, 120, 240)),
    ],
)
def test_group_normalisations(target: object, inputs: tuple, attrs: dict, expected: Cost) -> None:
    assert cost(target, inputs, (X,), **attrs) == expected


def test_instance_norm_in_eval_with_running_stats() -> None:
    """Normalised by the 4 channels' running statistics: ε add and root per channel (8), subtract
    and divide per element (240): 248 FLOPs, 120 MACs; DMAs 120 reads + ε 1 + running mean and
    variance 8 + momentum 1 + 120 writes = 250."""
    attrs = {"track_running_stats": True, "running_mean": spec(4), "running_var": spec(4), "weight": None}
    assert cost(nn.InstanceNorm2d, (X,), (X,), **attrs, momentum=0.1) == Cost(flops=248, macs=120, dmas=250)


def test_rms_norm() -> None:
    """24 rows of 5, weight: squares 120, sums 96, mean divisions 24, ε adds 24, roots 24, divisions
    120, scale 120 = 528 literal; departure (module docstring): the formula's ``4·N`` is one N more
    (648). MACs 240, DMAs 120 + 5 + 120."""
    got = cost(nn.RMSNorm, (X,), (X,), normalized_shape=(5,), weight=spec(5))
    assert got == Cost(flops=528 + 120, macs=240, dmas=245)
    # the functional spellings by name; ATen's unbound, by position (the input first)
    for target in (F.rms_norm, torch.rms_norm):
        assert cost(target, (X, spec(5)), (X,), normalized_shape=[5], weight=spec(5)) == got
    aten_rms = torch.ops.aten.rms_norm.default
    assert cost(aten_rms, (X, spec(5)), (X,), args=(X, [5], spec(5), None), weight=spec(5)) == got
    # over the last two dims (8 rows of 15): 4·120 + 2·8 + 120 = 616 FLOPs, weight (3, 5) read
    wide = cost(aten_rms, (X, spec(3, 5)), (X,), args=(X, [3, 5], spec(3, 5), None), weight=spec(3, 5))
    assert wide == Cost(flops=616, macs=240, dmas=120 + 15 + 120)


def test_normalize() -> None:
    """``F.normalize(p=2, dim=1)``: 30 rows of 4: |x|^p 120, sums 90 (3 adds a row), roots 30,
    clamps 30, divisions 120 = 390 FLOPs literal; departure: the formula counts the sums as one add
    per element (120, + 30): 420. DMAs 120 + 120."""
    got = cost(F.normalize, (X,), (X,), p=2.0, dim=1, eps=1e-12)
    assert got == Cost(flops=390 + 30, dmas=240)


def test_aten_batch_norm_spelling() -> None:
    """``_native_batch_norm_legit_no_training`` (eval, affine, 4 channels): ε add and root 8,
    subtract, divide, scale, shift 480: 488 FLOPs, 240 MACs; DMAs 120 + ε 1 + running 8 + affine 8
    + momentum 1 + 120 = 258."""
    attrs = {"weight": spec(4), "bias": spec(4), "running_mean": spec(4), "running_var": spec(4), "momentum": 0.1}
    got = cost(aten._native_batch_norm_legit_no_training.default, (X,), (X,), **attrs)
    assert got == Cost(flops=488, macs=240, dmas=258)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_torch_own_norm_functions_count_as_f(training: bool, affine: bool) -> None:
    """``torch.batch_norm`` and ``torch.instance_norm`` (what ``F``'s call; their own order, weight first, and a
    ``cudnn_enabled`` flag) cost what ``F.batch_norm`` and ``F.instance_norm`` cost: every argument is read by
    name (unknown ops before)."""
    x, channels = randn(0, 2, 3, 5).float(), 3
    weight, bias = (torch.rand(channels), torch.rand(channels)) if affine else (None, None)
    mean, var = torch.zeros(channels), torch.ones(channels)
    expected = function_cost(F.batch_norm, x, mean, var, weight, bias, training, 0.1, 1e-5)
    assert function_cost(torch.batch_norm, x, weight, bias, mean, var, training, 0.1, 1e-5, False) == expected
    expected = function_cost(F.instance_norm, x, None, None, weight, bias, True, 0.1, 1e-5)
    assert function_cost(torch.instance_norm, x, weight, bias, None, None, True, 0.1, 1e-5, False) == expected
    expected = function_cost(F.instance_norm, x, mean, var, weight, bias, training, 0.1, 1e-5)
    assert function_cost(torch.instance_norm, x, weight, bias, mean, var, training, 0.1, 1e-5, False) == expected


class _Spelled(nn.Module):
    """conv, batch norm, instance norm, dropout and alpha dropout, spelled with ``F``'s functions or torch's own."""

    def __init__(self, own: bool, training: bool) -> None:
        super().__init__()
        self.conv, self.bn, self.own, self.batch_statistics = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), own, training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, bn, train = self.conv(x), self.bn, self.batch_statistics
        if self.own:
            y = torch.batch_norm(y, bn.weight, bn.bias, bn.running_mean, bn.running_var, train, 0.1, 1e-5, False)
            y = torch.instance_norm(y, None, None, None, None, True, 0.1, 1e-5, False)
            return torch.alpha_dropout(torch.dropout(y, 0.2, train), 0.1, train)
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, train, 0.1, 1e-5)
        y = F.instance_norm(y, None, None, None, None, True, 0.1, 1e-5)
        return F.alpha_dropout(F.dropout(y, 0.2, train), 0.1, train)


@pytest.mark.parametrize("training", [False, True])
def test_a_model_spelled_with_torch_own_functions_reports_as_with_f(training: bool) -> None:
    """Counts, receptive fields and memory: the whole report, node names included (fx names both spellings alike)."""
    from torchscan import crawl_module

    reports = [
        crawl_module(_Spelled(own, training).eval(), (3, 12, 12), receptive_field=True).to_dict()
        for own in (False, True)
    ]
    assert reports[0]["totals"]["complete"] and reports[1] == reports[0]
