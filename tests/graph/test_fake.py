"""Fake tensors made without FakeTensor's constructor are the objects the constructor makes."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

from torchscan.graph.fake import fake_tensor


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
