"""Table tests: each core formula on literal shapes against hand-computed costs."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops import DEFAULT_REGISTRY
from torchscan.records import Cost, OpCall, TensorSpec


def spec(*shape: int, contiguous: bool = True) -> TensorSpec:
    return TensorSpec(tuple(shape), torch.float32, contiguous)


def cost(target: object, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], **attrs: object) -> Cost:
    formula = DEFAULT_REGISTRY.lookup(target)
    assert formula is not None, target
    kind = "module" if isinstance(target, type) else "function"
    return formula(OpCall(kind=kind, target=target, inputs=inputs, outputs=outputs, attrs=attrs))


# Conv2d 3->8, k=3x3, out 1x8x4x4 (N_out = 128), (C_in/g)·K = 27
CONV_BIAS = Cost(flops=128 * (2 * 27 - 1 + 1), macs=128 * 27, dmas=128 * 27 + (8 * 27 + 8) + 128)
CONV_NOBIAS = Cost(flops=128 * (2 * 27 - 1), macs=128 * 27, dmas=128 * 27 + 8 * 27 + 128)


@pytest.mark.parametrize(
    ("target", "inputs", "outputs", "attrs", "expected"),
    [
        (nn.Conv2d, (spec(1, 3, 6, 6),), (spec(1, 8, 4, 4),), {"weight": spec(8, 3, 3, 3), "bias": spec(8)}, CONV_BIAS),
        (
            F.conv2d,
            (spec(1, 3, 6, 6), spec(8, 3, 3, 3)),
            (spec(1, 8, 4, 4),),
            {"weight": spec(8, 3, 3, 3), "bias": None},
            CONV_NOBIAS,
        ),
        # depthwise 1-D: g = C = 4, (C_in/g)·K = 5, N_out = 2·4·6 = 48
        (
            nn.Conv1d,
            (spec(2, 4, 10),),
            (spec(2, 4, 6),),
            {"weight": spec(4, 1, 5)},
            Cost(flops=48 * 9, macs=48 * 5, dmas=48 * 5 + 20 + 48),
        ),
        # 3-D conv 2->3, k=2x2x2: fan = 16, N_out = 3·2·2·2 = 24
        (
            nn.Conv3d,
            (spec(1, 2, 3, 3, 3),),
            (spec(1, 3, 2, 2, 2),),
            {"weight": spec(3, 2, 2, 2, 2), "bias": spec(3)},
            Cost(flops=24 * 32, macs=24 * 16, dmas=24 * 16 + 51 + 24),
        ),
        # ConvTranspose2d 4->2, k=3, stride 2: input 1x4x3x3 (N_in = 36), (C_out/g)·K = 18, out 1x2x7x7 (98)
        (
            nn.ConvTranspose2d,
            (spec(1, 4, 3, 3),),
            (spec(1, 2, 7, 7),),
            {"weight": spec(4, 2, 3, 3), "bias": spec(2)},
            Cost(flops=36 * 18 * 2 + 98, macs=36 * 18, dmas=36 * 18 + 74 + 98),
        ),
        (
            F.conv_transpose1d,
            (spec(1, 4, 5), spec(4, 3, 2)),
            (spec(1, 3, 6),),
            {"weight": spec(4, 3, 2)},
            Cost(flops=20 * 6 * 2, macs=20 * 6, dmas=20 * 6 + 24 + 18),
        ),
        # Linear 10 -> 4 on batch 3
        (
            nn.Linear,
            (spec(3, 10),),
            (spec(3, 4),),
            {"weight": spec(4, 10), "bias": spec(4)},
            Cost(flops=12 * 20, macs=120, dmas=30 + 44 + 12),
        ),
        (
            F.linear,
            (spec(3, 10), spec(4, 10)),
            (spec(3, 4),),
            {"weight": spec(4, 10), "bias": None},
            Cost(flops=12 * 19, macs=120, dmas=30 + 40 + 12),
        ),
        # matmul [2,3,5] @ [5,7] -> [2,3,7]: N_out = 42, k = 5
        (
            torch.matmul,
            (spec(2, 3, 5), spec(5, 7)),
            (spec(2, 3, 7),),
            {},
            Cost(flops=42 * 9, macs=42 * 5, dmas=30 + 35 + 42),
        ),
        (operator.matmul, (spec(4, 6), spec(6, 2)), (spec(4, 2),), {}, Cost(flops=8 * 11, macs=48, dmas=24 + 12 + 8)),
        (
            torch.bmm,
            (spec(3, 2, 4), spec(3, 4, 5)),
            (spec(3, 2, 5),),
            {},
            Cost(flops=30 * 7, macs=120, dmas=24 + 60 + 30),
        ),
        (torch.Tensor.matmul, (spec(5), spec(5)), (spec(),), {}, Cost(flops=9, macs=5, dmas=11)),
        # BatchNorm2d eval, C = 4, N = 1·4·5·5 = 100, affine, momentum 0.1
        (
            nn.BatchNorm2d,
            (spec(1, 4, 5, 5),),
            (spec(1, 4, 5, 5),),
            {
                "weight": spec(4),
                "bias": spec(4),
                "running_mean": spec(4),
                "running_var": spec(4),
                "momentum": 0.1,
                "training": False,
            },
            Cost(flops=8 + 200 + 200, macs=200, dmas=100 + 1 + 8 + 8 + 1 + 100),
        ),
        # BatchNorm1d without affine, momentum None
        (
            nn.BatchNorm1d,
            (spec(2, 3),),
            (spec(2, 3),),
            {"running_mean": spec(3), "running_var": spec(3), "momentum": None, "training": False},
            Cost(flops=6 + 12, macs=6, dmas=6 + 1 + 6 + 6),
        ),
        # MaxPool2d k=3 on out 1x2x4x4 (32)
        (
            nn.MaxPool2d,
            (spec(1, 2, 9, 9),),
            (spec(1, 2, 4, 4),),
            {"kernel_size": 3},
            Cost(flops=32 * 8, macs=32 * 8, dmas=32 * 9 + 32),
        ),
        (F.max_pool1d, (spec(1, 2, 9),), (spec(1, 2, 4),), {"kernel_size": 2}, Cost(flops=8, macs=8, dmas=16 + 8)),
        # AvgPool2d k=(2,3), d = 2: N_out·(K − 1 + d) = 6·(6 − 1 + 2)
        (
            nn.AvgPool2d,
            (spec(1, 1, 4, 6),),
            (spec(1, 1, 2, 3),),
            {"kernel_size": (2, 3)},
            Cost(flops=42, macs=42, dmas=36 + 6),
        ),
        # Adaptive avg 7x7 -> 1x1: K = 49, d = 2
        (
            nn.AdaptiveAvgPool2d,
            (spec(1, 8, 7, 7),),
            (spec(1, 8, 1, 1),),
            {"output_size": 1},
            Cost(flops=8 * 50, macs=8 * 50, dmas=8 * 49 + 8),
        ),
        # Adaptive max 10 -> 3 (not divisible): torch's windows per dim are [0, 4), [3, 7), [6, 10),
        # 4 taps each, so each of the 9 outputs reads 4 x 4 = 16 elements (144 reads) and makes 15 comparisons
        (
            F.adaptive_max_pool2d,
            (spec(1, 1, 10, 10),),
            (spec(1, 1, 3, 3),),
            {"output_size": 3},
            Cost(flops=9 * 15, macs=9 * 15, dmas=144 + 9),
        ),
        (nn.ReLU, (spec(2, 5),), (spec(2, 5),), {"inplace": False}, Cost(flops=10, dmas=20)),
        (nn.ReLU, (spec(2, 5),), (spec(2, 5),), {"inplace": True}, Cost(flops=10, dmas=10)),
        (F.relu_, (spec(2, 5),), (spec(2, 5),), {}, Cost(flops=10, dmas=10)),
        (nn.ReLU6, (spec(2, 5),), (spec(2, 5),), {"inplace": False}, Cost(flops=20, dmas=20)),
        (nn.Hardtanh, (spec(2, 5),), (spec(2, 5),), {"inplace": True}, Cost(flops=20, dmas=10)),
        (nn.LeakyReLU, (spec(2, 5),), (spec(2, 5),), {"inplace": False}, Cost(flops=40, dmas=21)),
        (nn.ELU, (spec(2, 5),), (spec(2, 5),), {"inplace": True}, Cost(flops=60, dmas=11)),
        (nn.Sigmoid, (spec(2, 5),), (spec(2, 5),), {}, Cost(flops=40, dmas=20)),
        (torch.tanh, (spec(2, 5),), (spec(2, 5),), {}, Cost(flops=60, dmas=30)),
        (nn.Dropout, (spec(2, 5),), (spec(2, 5),), {"p": 0.5, "training": False}, Cost()),
        (
            nn.Dropout,
            (spec(2, 5),),
            (spec(2, 5),),
            {"p": 0.5, "training": True, "inplace": False},
            Cost(flops=10, dmas=21),
        ),
        (F.dropout, (spec(2, 5),), (spec(2, 5),), {"p": 0.0, "training": True}, Cost()),
        # elementwise: tensor + tensor (broadcast), tensor + scalar
        (operator.add, (spec(2, 3), spec(3)), (spec(2, 3),), {}, Cost(flops=6, dmas=6 + 3 + 6)),
        (torch.mul, (spec(2, 3),), (spec(2, 3),), {}, Cost(flops=6, dmas=12)),
        (torch.Tensor.add_, (spec(2, 3), spec(2, 3)), (spec(2, 3),), {}, Cost(flops=6, dmas=18)),
        (operator.truediv, (spec(4),), (spec(4),), {}, Cost(flops=4, dmas=8)),
        (torch.cat, (spec(1, 2, 3), spec(1, 4, 3)), (spec(1, 6, 3),), {}, Cost(dmas=36)),
        (torch.stack, (spec(2, 3), spec(2, 3)), (spec(2, 2, 3),), {}, Cost(dmas=24)),
        (torch.flatten, (spec(2, 3, 4),), (spec(2, 12),), {}, Cost()),
        (torch.Tensor.view, (spec(2, 3, 4),), (spec(6, 4),), {}, Cost()),
        (operator.getitem, (spec(2, 3, 4),), (spec(3, 4),), {}, Cost()),
        (nn.Identity, (spec(2, 3),), (spec(2, 3),), {}, Cost()),
        (torch.Tensor.contiguous, (spec(2, 3),), (spec(2, 3),), {}, Cost()),
        (torch.Tensor.contiguous, (spec(2, 3, contiguous=False),), (spec(2, 3),), {}, Cost(dmas=12)),
    ],
)
def test_formula(target: object, inputs: tuple, outputs: tuple, attrs: dict, expected: Cost) -> None:
    assert cost(target, inputs, outputs, **attrs) == expected


def test_batch_norm_training_adds_statistics() -> None:
    attrs = {"weight": spec(4), "bias": spec(4), "running_mean": spec(4), "running_var": spec(4), "momentum": 0.1}
    args = ((spec(2, 4, 3, 3),), (spec(2, 4, 3, 3),))
    evaluation = cost(nn.BatchNorm2d, *args, **attrs, training=False)
    training = cost(nn.BatchNorm2d, *args, **attrs, training=True)
    n, c = 72, 4
    assert training.flops - evaluation.flops == 4 * n + 6 * c + 1
    assert training.macs - evaluation.macs == 2 * n
    assert training.dmas - evaluation.dmas == 1 + 2 * c


def test_every_core_op_is_registered_in_all_spellings() -> None:
    spellings = [
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        F.conv1d,
        F.conv2d,
        F.conv3d,
        nn.ConvTranspose1d,
        nn.ConvTranspose2d,
        nn.ConvTranspose3d,
        F.conv_transpose2d,
        nn.Linear,
        F.linear,
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.BatchNorm3d,
        F.batch_norm,
        nn.MaxPool2d,
        nn.AvgPool2d,
        nn.AdaptiveAvgPool2d,
        nn.AdaptiveMaxPool2d,
        F.max_pool2d,
        F.avg_pool2d,
        F.adaptive_avg_pool2d,
        F.adaptive_max_pool2d,
        nn.ReLU,
        F.relu,
        torch.relu,
        torch.Tensor.relu,
        torch.Tensor.relu_,
        nn.ReLU6,
        F.relu6,
        nn.Hardtanh,
        F.hardtanh,
        nn.LeakyReLU,
        F.leaky_relu,
        nn.ELU,
        F.elu,
        nn.Sigmoid,
        torch.sigmoid,
        torch.Tensor.sigmoid,
        nn.Tanh,
        torch.tanh,
        torch.Tensor.tanh,
        nn.Dropout,
        F.dropout,
        operator.add,
        operator.iadd,
        torch.add,
        torch.Tensor.add,
        torch.Tensor.add_,
        operator.sub,
        torch.sub,
        torch.Tensor.sub_,
        operator.mul,
        torch.mul,
        torch.Tensor.mul_,
        operator.truediv,
        torch.div,
        torch.Tensor.div_,
        torch.cat,
        torch.stack,
        torch.matmul,
        torch.mm,
        torch.bmm,
        operator.matmul,
        torch.Tensor.matmul,
        torch.Tensor.view,
        torch.reshape,
        torch.flatten,
        torch.Tensor.permute,
        torch.transpose,
        torch.squeeze,
        torch.unsqueeze,
        operator.getitem,
        nn.Identity,
        nn.Flatten,
    ]
    missing = [getattr(target, "__name__", target) for target in spellings if target not in DEFAULT_REGISTRY]
    assert not missing


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # destination 4x3, index 2, source 2x3: 6 adds; index + 3·source (+ copy 12 + 12 out of place)
        (torch.index_add, Cost(flops=6, dmas=2 + 18 + 24)),
        (torch.Tensor.index_add_, Cost(flops=6, dmas=2 + 18)),
    ],
)
def test_scatter_add(target: object, expected: Cost) -> None:
    assert cost(target, (spec(4, 3), spec(2), spec(2, 3)), (spec(4, 3),)) == expected


@pytest.mark.parametrize(
    ("own", "functional"),
    [
        (torch.dropout, F.dropout),
        (torch.alpha_dropout, F.alpha_dropout),
        (torch.feature_alpha_dropout, F.feature_alpha_dropout),
    ],
)
@pytest.mark.parametrize(("p", "train"), [(0.5, True), (0.5, False), (0.0, True)])
def test_torch_own_dropout_functions_count_as_f(own: object, functional: object, p: float, train: bool) -> None:
    """``torch.dropout(input, p, train)`` and the alpha dropouts (what ``F``'s call; the flag named ``train``) cost
    what ``F``'s spellings cost: free in eval or at ``p = 0``, a draw and a multiply per element in training."""
    from tests.ops.helpers import function_cost

    x = torch.randn(2, 3, 4)
    expected = function_cost(functional, x, p, train)
    assert function_cost(own, x, p, train) == expected
    assert (expected == Cost()) is (not train or p == 0)


def test_aten_spellings_of_copies_and_factories() -> None:
    """A recorded model's ``repeat`` (a copy: ``N_in + N_out``), ``arange(start, end, step)`` and ``empty_like``
    (written: ``N_out``)."""
    from tests.ops.helpers import function_cost

    aten = torch.ops.aten
    x = torch.randn(2, 3)
    assert function_cost(aten.repeat.default, x, [2, 2]) == function_cost(torch.Tensor.repeat, x, 2, 2)
    assert function_cost(aten.repeat.default, x, [2, 2]) == Cost(dmas=6 + 24)
    assert function_cost(aten.arange.start_step, 0, 10, 2) == Cost(dmas=5)
    assert function_cost(aten.empty_like.default, x) == Cost(dmas=6)


def test_torch_in_place_dropouts_and_fill() -> None:
    """``torch.dropout_(x, p, train)`` costs ``torch.dropout``'s without its writes (the activations' and dropout's
    in-place convention); ``torch.fill(x, v)`` writes a new tensor: ``DMAs = N_out``."""
    from tests.ops.helpers import function_cost

    x = torch.randn(2, 3)
    for out_of_place, in_place in (
        (torch.dropout, torch.dropout_),
        (torch.alpha_dropout, torch.alpha_dropout_),
        (torch.feature_alpha_dropout, torch.feature_alpha_dropout_),
    ):
        written = function_cost(out_of_place, x, 0.5, True)
        assert function_cost(in_place, x.clone(), 0.5, True) == Cost(flops=written.flops, dmas=written.dmas - 6)
        assert function_cost(in_place, x.clone(), 0.5, False) == Cost()
    assert function_cost(torch.fill, x, 2.0) == Cost(dmas=6)
