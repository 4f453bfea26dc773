"""Parameter ownership and reading: the ``unused-params`` diagnostic names only parameters no op reads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from torchscan import crawl_module


def _unused(model: nn.Module, *shape: int) -> list[str]:
    report = crawl_module(model, shape)
    return [name for d in report.diagnostics if d.code == "unused-params" for name in d.nodes]


class _Functional(nn.Module):
    """Swin's pattern: sub-modules' weights passed to a functional call, the sub-modules never called."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)  # never used

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.proj.weight, self.proj.bias)


class _Tied(nn.Module):
    """T5's pattern: an embedding owned by ``shared`` (first), its weight tied to a called ``lookup``."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Embedding(10, 4)
        self.lookup = nn.Embedding(10, 4)
        self.lookup.weight = self.shared.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lookup(ids)


def test_parameters_read_by_a_functional_call_are_used() -> None:
    assert _unused(_Functional(), 8) == ["head"]


def test_a_tied_parameter_read_through_another_module_is_used() -> None:
    report = crawl_module(_Tied(), (5,), dtype=torch.long)
    assert not [d for d in report.diagnostics if d.code == "unused-params"]
    assert report.row("shared").params == 40 and report.row("lookup").shared_params == 40


def test_swin_attention_weights_are_used_and_an_aux_head_in_eval_is_not() -> None:
    assert _unused(torchvision.models.swin_t(), 3, 224, 224) == []
    assert _unused(torchvision.models.inception_v3(init_weights=False).eval(), 3, 299, 299) == ["AuxLogits"]


def test_buffer_bytes_per_module_and_in_total() -> None:
    """BatchNorm2d(3): running mean and variance (3 float32 each) and an int64 batch counter,
    3·4 + 3·4 + 8 = 32 bytes; BatchNorm1d(2) in float64: 2·8 + 2·8 + 8 = 40; a buffer shared by
    two modules counts once, under its first owner."""
    from torchscan.passes.params import collect_params

    model = nn.Sequential(nn.BatchNorm2d(3), nn.BatchNorm1d(2).double(), nn.Module())
    model[2].register_buffer("alias", model[0].running_mean)
    summary = collect_params(model)
    assert [summary.by_module[path].buffer_bytes for path in ("", "0", "1", "2")] == [0, 32, 40, 0]
    assert summary.buffer_bytes == 72
    assert summary.param_bytes == 2 * 3 * 4 + 2 * 2 * 8


class _Mixed(nn.Module):
    """Every way a tensor can be held: fp16 and frozen parameters, a parameter registered twice on one
    module and tied across three, a missing bias, buffers (one shared, one None, one int64)."""

    def __init__(self) -> None:
        super().__init__()
        self.half = nn.Linear(3, 5).half()
        self.frozen = nn.Linear(5, 2, bias=False).requires_grad_(False)
        self.a, self.b, self.c = nn.Embedding(7, 3), nn.Embedding(7, 3), nn.Embedding(7, 3)
        self.b.weight = self.a.weight
        self.c.weight = self.a.weight
        self.c.register_parameter("alias", self.a.weight)  # twice on c itself
        self.norm = nn.BatchNorm1d(5).double()
        self.norm.register_buffer("none", None)
        self.b.register_buffer("steps", self.norm.num_batches_tracked)


def _owned(module: nn.Module) -> list[torch.Tensor]:
    return [t for t in module._parameters.values() if t is not None]


def test_collect_params_counts_each_tensor_once_as_torch_does() -> None:
    """Totals are torch's own (``parameters()`` and ``buffers()`` skip repeated tensors); per module,
    what it holds directly is split into owned (the first holder in ``named_modules`` order) and shared."""
    from torchscan.passes.params import collect_params

    for model in (_Mixed(), torchvision.models.mobilenet_v3_small(), nn.Transformer(16, 2, 1, 1, 32)):
        summary = collect_params(model)
        parameters, buffers = list(model.parameters()), list(model.buffers())
        assert summary.params == sum(p.numel() for p in parameters)
        assert summary.trainable == sum(p.numel() for p in parameters if p.requires_grad)
        assert summary.param_bytes == sum(p.numel() * p.element_size() for p in parameters)
        assert summary.buffer_bytes == sum(b.numel() * b.element_size() for b in buffers)
        seen: set[int] = set()
        for path, module in model.named_modules():
            held = summary.by_module[path]
            first = [t for t in _owned(module) if id(t) not in seen and not seen.add(id(t))]  # type: ignore[func-returns-value]
            assert held.params == sum(t.numel() for t in first)
            assert held.params + held.shared == sum(t.numel() for t in _owned(module))
            assert held.trainable == sum(t.numel() for t in first if t.requires_grad)
            assert [(e.shape, e.nbytes) for e in held.entries] == [(tuple(t.shape), t.nbytes) for t in first]


def test_collect_params_by_hand() -> None:
    """_Mixed: the fp16 Linear 3·5 + 5 = 20 parameters (40 bytes), the frozen one 10 (40 bytes), the
    embedding 21 (84 bytes) owned by ``a`` and shared by ``b`` (21) and ``c`` (42: twice); BatchNorm1d
    10 float64 parameters (80 bytes) and 5·8 + 5·8 + 8 = 88 buffer bytes, of which the int64 counter
    (8) is counted under ``b``, which holds it too and comes first in ``named_modules`` order."""
    from torchscan.passes.params import collect_params

    summary = collect_params(_Mixed())
    assert (summary.params, summary.trainable) == (61, 51)
    assert (summary.param_bytes, summary.buffer_bytes) == (244, 88)
    held = summary.by_module
    assert [(held[p].params, held[p].shared) for p in ("a", "b", "c")] == [(21, 0), (0, 21), (0, 42)]
    assert held["b"].tied == (("a.weight", 84),) and held["c"].tied == (("a.weight", 84),)
    assert (held["frozen"].trainable, held["half"].param_bytes) == (0, 40)
    assert (held["b"].buffer_bytes, held["norm"].buffer_bytes, held["norm"].param_bytes) == (8, 80, 80)


def test_packed_weights_are_parameters_that_get_no_gradient() -> None:
    """torch.ao's quantized layers pack their weight and bias (neither parameter nor buffer): a dynamically quantized
    MLP reported 0 parameters and 0 bytes. Unpacked, they count as torch's layers hold them (an int8 weight, a float32
    bias), none trainable, and a called layer's packed weights are read (no ``unused-params`` diagnostic)."""
    float_mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    quantized = torch.ao.quantization.quantize_dynamic(float_mlp, {nn.Linear}, dtype=torch.qint8)
    report = crawl_module(quantized, (16,))
    weights, biases = 16 * 32 + 32 * 4, 32 + 4
    assert report.totals.params == report.totals.non_trainable_params == weights + biases
    assert report.totals.trainable_params == 0
    assert report.totals.param_bytes == weights * 1 + biases * 4
    assert report.row("0").params == 16 * 32 + 32
    assert not [d for d in report.diagnostics if d.code == "unused-params"]
    unused = crawl_module(_Unused(quantized), (16,))  # a packed layer nothing calls: unused
    (note,) = [d for d in unused.diagnostics if d.code == "unused-params"]
    assert note.message.startswith(f"{4 * 4 + 4} parameters") and note.nodes == ("spare",)


class _Unused(nn.Module):
    """A quantized MLP called, and one of its layers held but never called."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.mlp = mlp
        self.spare = torch.ao.nn.quantized.dynamic.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class _Static(nn.Module):
    """A statically quantized CNN's float model (torch.ao's eager quantization: stubs around a conv and a linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = nn.Conv2d(3, 8, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8 * 6 * 6, 10)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.fc(self.relu(self.conv(self.quant(x))).flatten(1)))


def test_a_statically_quantized_model_gets_a_report_with_its_packed_weights() -> None:
    """Quantized activations have no fake tensor: the analysis falls back to a real forward (as before), whose memory
    recording then raised FakeTensor's ``quantized nyi in meta tensors`` from deep inside torch (no report). Now a
    call no fake can stand for takes its family's rule; the packed weights (the conv's on the layer itself, the
    linear's in a child) are its parameters, read where the layers' ops ran."""
    model = _Static().eval()
    model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    prepared = torch.ao.quantization.prepare(model)
    prepared(torch.randn(4, 3, 8, 8))
    quantized = torch.ao.quantization.convert(prepared)
    report = crawl_module(quantized, (3, 8, 8))
    assert {"capture-fallback", "real-forward"} <= {d.code for d in report.diagnostics}
    assert not [d for d in report.diagnostics if d.code == "unused-params"]
    packed = [quantized.conv.weight(), quantized.conv.bias(), quantized.fc.weight(), quantized.fc.bias()]
    assert report.totals.params == report.totals.non_trainable_params == sum(tensor.numel() for tensor in packed)
    assert report.memory.activation_peak_bytes > 0
