"""Fake tensors made without FakeTensor's constructor are the objects the constructor makes."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

from torchscan import crawl_module
from torchscan.errors import CaptureError
from torchscan.graph.fake import analysis_mode, fake_tensor


def _meta(*shape: int, requires_grad: bool = False) -> torch.Tensor:
    return torch.empty(*shape, device="meta", requires_grad=requires_grad)


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("unsafe", [False, True])
def test_a_fake_is_the_constructor_s_object(device: str, requires_grad: bool, unsafe: bool) -> None:
    """On the CPU and on ``meta`` (a model built on the meta device: its fakes report ``meta``)."""
    mode = FakeTensorMode()
    mode._allow_unsafe_data_ptr_access, mode.allow_meta = unsafe, True
    meta = _meta(3, 4, requires_grad=requires_grad)
    made, reference = fake_tensor(mode, meta, torch.device(device)), FakeTensor(mode, meta, torch.device(device))
    assert type(made) is FakeTensor and made.fake_mode is mode
    assert vars(made) == vars(reference)
    assert torch._C._dispatch_keys(made) == torch._C._dispatch_keys(reference)
    assert (made.device, made.requires_grad, made.shape, made.stride()) == (
        reference.device,
        reference.requires_grad,
        reference.shape,
        reference.stride(),
    )
    assert made.untyped_storage()._cdata == meta.untyped_storage()._cdata  # on the meta tensor's storage
    with mode:  # ops on it run as on the constructor's
        for fake in (made, reference):
            out = (fake.t() @ fake).sum(0)
            assert (type(out), out.shape, out.device, out.requires_grad) == (
                FakeTensor,
                torch.Size([4]),
                torch.device(device),
                requires_grad,
            )
    if unsafe:  # a data pointer read is allowed (torch warns once) or refused, as the mode says for its fakes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made.data_ptr()
    else:
        with pytest.raises(RuntimeError):
            made.data_ptr()


def test_other_devices_go_through_the_constructor() -> None:
    mode = FakeTensorMode()
    meta = _meta(2)
    made = fake_tensor(mode, meta, torch.device("cuda"))  # normalized by the constructor: an index given
    assert made.device == torch.device("cuda", 0) == FakeTensor(mode, meta, torch.device("cuda")).device
    refusing = FakeTensorMode()  # a mode that refuses meta fakes: the constructor's error
    refusing.allow_meta = False
    with pytest.raises(AssertionError, match="meta"):
        FakeTensor(refusing, meta, torch.device("meta"))
    with pytest.raises(AssertionError, match="meta"):
        fake_tensor(refusing, meta, torch.device("meta"))


class _Probe(torch.nn.Module):
    """Calls an ATen op that has a CPU kernel and no fake (meta) one, then a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.ops.aten._torchscan_test_probe(x))


@pytest.fixture(scope="module")
def probe_calls() -> Iterator[list[torch.device]]:
    """An ``aten`` op defined for these tests (the namespace whose ops FakeTensor's fallback would run for
    real: cuDNN's RNN kernels are such ops on CUDA); the devices its kernel ran on."""
    calls: list[torch.device] = []
    library = torch.library.Library("aten", "FRAGMENT")
    library.define("_torchscan_test_probe(Tensor x) -> Tensor")

    def kernel(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.device)
        return x * 2

    library.impl("_torchscan_test_probe", kernel, "CPU")
    yield calls
    library._destroy()


def test_the_analysis_never_runs_a_real_kernel_for_an_op_without_a_fake_one(probe_calls: list[torch.device]) -> None:
    """FakeTensor's default runs such an op's real kernel on zeros of its inputs' sizes and device (an analysis
    of a CUDA LSTM allocated 22 MB of the GPU that way, on an H200): the analysis's modes never do. Without the
    real forward the capture fails and says why; with it, the one real pass is the guarded one, and says so."""
    assert analysis_mode().allow_fallback_kernels is False
    before = len(probe_calls)
    with pytest.raises(CaptureError, match=r"_torchscan_test_probe.*no fake \(meta\) kernel"):
        crawl_module(_Probe(), (8,), real_forward=False)
    assert len(probe_calls) == before
    report = crawl_module(_Probe(), (8,))
    assert len(probe_calls) == before + 1  # the real forward's call
    assert report.context.capture == "real-forward"
    assert {"capture-fallback", "real-forward"} <= {note.code for note in report.diagnostics}


def test_the_analysis_s_dispatch_modes_run_their_dispatch_as_written() -> None:
    """torch wraps a dispatch mode's ``__torch_dispatch__`` to keep dynamo out of it; the analysis's modes (which
    run only inside entry points that keep dynamo out already) are left unwrapped: ~1 µs less on every ATen op a
    recording dispatches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from torchscan.graph.fake import AnalysisDispatchMode
    from torchscan.graph.script import _AtenRecorder
    from torchscan.passes.memory.internal import _FirstOp, _Tracker

    class Plain(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            return func(*args, **(kwargs or {}))

    class Ours(AnalysisDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            return func(*args, **(kwargs or {}))

    assert hasattr(Plain.__dict__["__torch_dispatch__"], "__wrapped__")  # torch's wrapper, where it applies
    for mode in (Ours, _Tracker, _FirstOp, _AtenRecorder):
        assert not hasattr(mode.__dict__["__torch_dispatch__"], "__wrapped__"), mode
    x = torch.ones(2, 3)
    with Ours():
        assert torch.equal(x.t().sum(0), torch.full((2,), 3.0))
