"""TorchScript models (``torch.jit.script``, ``torch.jit.load``): recorded op by ATen op on fake tensors, every
layer counted as its Python spelling counts it, wherever ATen runs it as one op."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from torchscan import crawl_module

LAYERS: dict[str, tuple[nn.Module, tuple[int, ...]]] = {
    "linear": (nn.Linear(8, 6), (5, 8)),
    "linear on tokens": (nn.Linear(8, 6), (4, 5, 8)),
    "conv": (nn.Conv2d(3, 4, 3, padding=1), (3, 8, 8)),
    "transposed conv": (nn.ConvTranspose2d(3, 4, 3, stride=2), (3, 8, 8)),
    "batch norm": (nn.BatchNorm2d(3), (3, 8, 8)),
    "layer norm": (nn.LayerNorm(8), (5, 8)),
    "group norm": (nn.GroupNorm(2, 4), (4, 6, 6)),
    "max pool": (nn.MaxPool2d(2), (3, 8, 8)),
    "average pool": (nn.AvgPool2d(2), (3, 8, 8)),
    "relu": (nn.ReLU(), (3, 8)),
    "gelu": (nn.GELU(), (3, 8)),
    "silu": (nn.SiLU(), (3, 8)),
    "hardswish": (nn.Hardswish(), (3, 8)),
    "leaky relu": (nn.LeakyReLU(), (3, 8)),
    "elu": (nn.ELU(), (3, 8)),
    "prelu": (nn.PReLU(), (3, 8)),
    "sigmoid": (nn.Sigmoid(), (3, 8)),
    "tanh": (nn.Tanh(), (3, 8)),
    "softmax": (nn.Softmax(-1), (3, 8)),
    "upsample nearest 1d": (nn.Upsample(scale_factor=2, mode="nearest"), (3, 4)),
    "upsample nearest 2d": (nn.Upsample(scale_factor=2, mode="nearest"), (3, 4, 4)),
    "upsample nearest 3d": (nn.Upsample(scale_factor=2, mode="nearest"), (3, 4, 4, 4)),
    "upsample linear": (nn.Upsample(scale_factor=2, mode="linear"), (3, 4)),
    "upsample bilinear": (nn.Upsample(scale_factor=2, mode="bilinear"), (3, 4, 4)),
    "upsample trilinear": (nn.Upsample(scale_factor=2, mode="trilinear"), (3, 4, 4, 4)),
    "upsample bicubic": (nn.Upsample(scale_factor=2, mode="bicubic"), (3, 4, 4)),
    "reflection pad": (nn.ReflectionPad2d(1), (3, 4, 4)),
    "replication pad": (nn.ReplicationPad1d(1), (3, 4)),
    "pixel shuffle": (nn.PixelShuffle(2), (8, 4, 4)),
    "channel shuffle": (nn.ChannelShuffle(3), (6, 4, 4)),
    "unfold": (nn.Unfold(2), (3, 4, 4)),
    "fold": (nn.Fold((4, 4), 2), (12, 9)),
}
"""Layers that ATen runs as one op: a scripted model of one counts as the layer. Others are decomposed by ATen and
counted op by op (an InstanceNorm's repeated weights, a LocalResponseNorm's pool of squares, Softsign's three ops),
so their counts differ by what the decomposition does."""


@pytest.mark.parametrize(("layer", "shape"), LAYERS.values(), ids=LAYERS.keys())
def test_a_scripted_layer_counts_as_the_layer(layer: nn.Module, shape: tuple[int, ...]) -> None:
    """Its ATen op has a formula (leaky_relu, elu, the upsamplings' ``.default`` overloads, reflection and replication
    pads, channel_shuffle, im2col and col2im were unknown ops before), read with ATen's argument order."""
    layer = layer.eval()
    plain = crawl_module(layer, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        scripted = torch.jit.script(layer)
    report = crawl_module(scripted, shape)
    assert report.context.capture == "torchscript-aten"
    assert plain.totals.complete and report.totals.complete, [d.message for d in report.diagnostics]
    counts = (report.totals.flops, report.totals.macs, report.totals.dmas)
    assert counts == (plain.totals.flops, plain.totals.macs, plain.totals.dmas)


class _Recurrent(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)[0]


RECURRENT = {
    "lstm": nn.LSTM(8, 6, batch_first=True),
    "lstm, 2 layers, bidirectional": nn.LSTM(8, 6, num_layers=2, bidirectional=True),
    "lstm without biases": nn.LSTM(8, 6, bias=False),
    "lstm with a projection": nn.LSTM(8, 6, proj_size=3),
    "gru": nn.GRU(8, 6, batch_first=True),
    "rnn": nn.RNN(8, 6),
}


@pytest.mark.parametrize("layer", RECURRENT.values(), ids=RECURRENT.keys())
def test_a_scripted_recurrent_layer_is_complete(layer: nn.Module) -> None:
    """An LSTM runs one ``mkldnn_rnn_layer`` per layer and direction on CPU: its FLOPs and MACs are the module's.
    A GRU, an RNN or a projected LSTM runs step by step (``unsafe_split`` of the gates, ``sigmoid_``, ``tanh_``):
    every op counted, the MACs the module's (its elementwise FLOPs and reads as ATen's ops do them)."""
    model = _Recurrent(layer).eval()
    plain = crawl_module(model, (5, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        report = crawl_module(torch.jit.script(model), (5, 8))
    assert report.totals.complete, [d.message for d in report.diagnostics]
    assert report.totals.macs == plain.totals.macs
    if isinstance(layer, nn.LSTM) and not layer.proj_size:
        assert report.totals.flops == plain.totals.flops


def test_a_scripted_module_without_forward_is_refused_with_a_reason() -> None:
    """TorchScript keeps no ``forward`` for ``nn.LSTM`` (its forward is overloaded): the user's own call fails too.
    The analysis says so and what to do, instead of an ``AttributeError`` from inside TorchScript."""
    from torchscan import InputError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(nn.LSTM(8, 6))
    with pytest.raises(InputError, match=r"has no forward method.*analyse the module unscripted"):
        crawl_module(scripted, (5, 8))


@pytest.mark.parametrize("kind", ["script", "trace"])
@pytest.mark.parametrize("name", ["shufflenet_v2_x0_5", "convnext_tiny", "resnet18"])
def test_scripted_and_traced_classifiers_count_as_the_model(name: str, kind: str) -> None:
    """A traced ShuffleNet divides its channel counts on tensors (``floor_divide``), ConvNeXt sets a view's strides in
    place (``as_strided_``): unknown ops before. The counts are the plain model's up to what ATen decomposes (a global
    average pool runs as ``mean``: its divisions and MACs by the reduction's convention), under 0.1%."""
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.get_model(name, weights=None).eval()
    plain = crawl_module(model, (3, 64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; tracing warns of its own Python reads
        scripted = torch.jit.script(model) if kind == "script" else torch.jit.trace(model, torch.randn(1, 3, 64, 64))
    report = crawl_module(scripted, (3, 64, 64))
    assert report.totals.complete, [d.message for d in report.diagnostics]
    for field in ("flops", "macs", "dmas"):
        assert getattr(report.totals, field) == pytest.approx(getattr(plain.totals, field), rel=1e-3)


@pytest.mark.slow
def test_a_scripted_swin_is_complete() -> None:
    """Swin's shifted windows: ``new_zeros`` of the attention mask, its ``copy_`` into slices (unknown before)."""
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.get_model("swin_t", weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        report = crawl_module(torch.jit.script(model), (3, 224, 224))
    plain = crawl_module(model, (3, 224, 224))
    assert report.totals.complete
    assert report.totals.macs == pytest.approx(plain.totals.macs, rel=1e-4)  # its norms' MACs as ATen's ops


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_t", "maxvit_t"])
def test_traced_swin_and_maxvit_count_as_the_model(name: str) -> None:
    """The TorchScript interpreter computes on a traced program's own constants: Swin's ``aten::equal`` of two head
    counts (wrapped numbers, which reach a dispatch mode as Python ints), MaxViT's ``item()`` of a constant tensor;
    both failed as a fake op (a ``ShapeError``) before. Swin's mask fills (``aten::fill_``) were unknown."""
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.get_model(name, weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; tracing warns of its own Python reads
        traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224), check_trace=False)
    report = crawl_module(traced, (3, 224, 224))
    plain = crawl_module(model, (3, 224, 224))
    assert report.totals.complete, [d.message for d in report.diagnostics]
    assert report.totals.params == plain.totals.params
    assert report.totals.macs == pytest.approx(plain.totals.macs, rel=1e-3)  # its pools and norms as ATen's ops


def test_only_ops_of_a_programs_small_constants_are_computed() -> None:
    """What the recording computes for real: an op whose tensor arguments are all the program's own constants (Python
    numbers where a tensor is taken, real tensors of at most 64 elements); never a fake, a large tensor, an op that
    writes its argument (a constant the user's module shares) or a random one (the process's generator)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from torchscan.graph.script import _constants_only

    aten = torch.ops.aten
    small = torch.tensor(3.0)
    assert _constants_only(aten.equal.default, (12, 24), {})  # wrapped numbers, as the interpreter passes them
    assert _constants_only(aten.mul.Tensor, (small, small), {})
    assert _constants_only(aten.cat.default, ([small.reshape(1), small.reshape(1)],), {})
    assert not _constants_only(aten.mul.Tensor, (torch.ones(65), small), {})
    assert not _constants_only(aten.add_.Tensor, (small, small), {})
    assert not _constants_only(aten.bernoulli.default, (small,), {})
    assert _constants_only(aten.add.Scalar, (small, 2), {})  # a number where the schema takes a number
    with FakeTensorMode():
        fake = torch.ones(2)
    assert not _constants_only(aten.mul.Tensor, (fake, small), {})
    assert not _constants_only(aten.zeros.default, ([2, 3],), {})  # a factory: no constant among its arguments


def test_a_view_of_a_parameter_shares_the_parameter_storage() -> None:
    """ATen runs ``linear`` as ``addmm(bias, x, t(weight))``: the interpreter hands the real weight to ``t``, whose
    result is a view of the weight, not an activation. The static peak was the plain model's plus every transposed
    weight (a scripted vgg11: 392.7 MiB against 22.0)."""
    mlp = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    plain = crawl_module(mlp, (64,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        report = crawl_module(torch.jit.script(mlp), (64,))
    assert report.memory.activation_peak_bytes == plain.memory.activation_peak_bytes
    assert report.memory.param_bytes == plain.memory.param_bytes
