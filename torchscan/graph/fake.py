"""Fake tensors made without the Python overhead of ``FakeTensor``'s constructor.

Shape rules and recordings wrap a meta tensor as a fake thousands of times per analysis (every view,
every new result). ``FakeTensor(mode, meta, device)`` checks its arguments, normalizes the device and
sets each of ~20 attributes through the tensor's ``__setattr__`` and torch's memo descriptors: ~20 µs,
where the tensor itself (``Tensor._make_subclass``) takes ~3. :func:`fake_tensor` makes the same
object — the subclass made by the same call, the same mutable-data-pointer flag, the same instance
state, copied in one ``dict.update`` from a fake made once per device by torch's own constructor (a
``meta`` model's fakes too, where the mode allows them); a device the constructor would spell another
way (``cuda`` for ``cuda:0``), one it refuses, torch's debug mode or an export in progress goes through
the constructor.

:func:`analysis_mode` makes every fake mode of an analysis: it never runs a real kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorConfig, FakeTensorMode
from torch.utils._mode_utils import no_dispatch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["AnalysisDispatchMode", "analysis_mode", "fake_tensor"]


class AnalysisDispatchMode(TorchDispatchMode):
    """A dispatch mode of the analysis (a recording's tracker, the TorchScript recorder): its
    ``__torch_dispatch__`` runs as written. torch wraps a mode's ``__torch_dispatch__`` in
    ``torch._disable_dynamo`` (so that dynamo compiles none of the mode's frames), ~1 µs on each of the
    thousands of ATen ops a recording dispatches; an analysis's modes run only inside its entry points,
    which run with dynamo off already (:func:`~torchscan.uncompiled.never_compiled`), so the wrapper is left
    off (``_should_skip_dynamo``, read by ``TorchDispatchMode.__init_subclass__``)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False


def analysis_mode() -> FakeTensorMode:
    """A fake mode for an analysis: real tensors of the copy may meet its fakes (``allow_non_fake_inputs``),
    and an op without a meta kernel raises (``UnsupportedOperatorException``, ``NotImplementedError``)
    instead of running torch's fallback: the real kernel on zero-filled real tensors of the inputs'
    sizes and device, which allocates real memory there — on CUDA, memory of the user's GPU — and does
    the arithmetic an analysis promises never to do (``aten._cudnn_rnn_backward``, an LSTM's backward on
    CUDA, has no meta kernel). Such an op fails the capture on fakes (the chain falls back to the guarded real
    forward, which says so) or, inside a call recorded for its memory, leaves that call to its family's rule."""
    return FakeTensorMode(allow_non_fake_inputs=True, allow_fallback_kernels=False)


@functools.cache
def _state(device: torch.device) -> Mapping[str, Any] | None:
    """The instance state torch's constructor gives a fake of ``device``, less its mode (``fake_mode``):
    the same for every fake of that device in every mode (None where it holds anything else, or where the
    constructor normalizes or refuses the device: the constructor is used)."""
    mode = FakeTensorMode()
    mode.allow_meta = True  # torch's config says for every mode; this one only makes the state
    with no_dispatch():
        meta = torch.empty(1, device="meta")
    try:
        state = dict(vars(FakeTensor(mode, meta, device)))
    except Exception:  # a device this build cannot name (no such backend): the constructor says so
        return None
    if state.pop("fake_mode", None) is not mode or state.get("_fake_device") != device:
        return None
    if any(value is not None for key, value in state.items() if key != "_fake_device"):
        return None
    return state


def fake_tensor(mode: FakeTensorMode, meta: torch.Tensor, device: torch.device) -> FakeTensor:
    """``FakeTensor(mode, meta, device)``: a fake of ``mode`` on ``meta``'s storage that reports ``device``."""
    state = _state(device)
    if (
        state is None
        or (device.type == "meta" and not mode.allow_meta)  # the constructor refuses it
        or FakeTensorConfig.debug
        or torch.compiler.is_exporting()
    ):
        return FakeTensor(mode, meta, device)
    made = torch.Tensor._make_subclass(
        FakeTensor, meta, meta.requires_grad, dispatch_device=True, device_for_backend_keys=device
    )
    if mode._allow_unsafe_data_ptr_access:
        torch._C._set_warn_deprecated_on_mutable_data_ptr(made)
    else:
        torch._C._set_throw_on_mutable_data_ptr(made)
    instance = vars(made)
    instance.update(state)
    instance["fake_mode"] = mode
    return made
