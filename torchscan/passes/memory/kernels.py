"""Buffers that ATen kernels make and their fake kernels do not.

An ATen op declared with a :class:`~torchscan.ops.registry.Workspace` next to its formula (oneDNN's
LSTM workspace of ``aten.mkldnn_rnn_layer`` on CPU, :mod:`torchscan.ops.recurrent`) returns, on fake
tensors, an empty tensor where its kernel returns a buffer of its own. Where calls are recorded on
fake tensors (:mod:`.internal`), that result is replaced by a fake buffer of the real size, so the
storage trackers, the saved-tensor hooks and the backward see its bytes as a real run does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from torchscan.ops import DEFAULT_REGISTRY

__all__ = ["with_workspace"]


def with_workspace(func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any) -> Any:
    """``result`` of the ATen op ``func(*args, **kwargs)`` dispatched on fake tensors, with its
    declared workspace (if any, and if the fake one is smaller) replaced by a fake ``uint8`` buffer
    of the bytes the real kernel makes with these arguments in the current grad mode."""
    declared = DEFAULT_REGISTRY.workspace(func)
    if declared is None or not isinstance(result, tuple) or declared.output >= len(result):
        return result
    made = result[declared.output]
    if not isinstance(made, torch.Tensor):
        return result
    nbytes = declared.nbytes(*args, **kwargs)
    if nbytes <= made.untyped_storage().nbytes():
        return result
    buffer = made.new_empty((nbytes,), dtype=torch.uint8)
    return (*result[: declared.output], buffer, *result[declared.output + 1 :])
