"""Shared helpers of the op tests: OpCalls from plain tuples, and the FlopCounterMode oracle."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from torchscan.ops import DEFAULT_REGISTRY
from torchscan.records import Cost, OpCall, TensorSpec


def spec(*shape: int, dtype: torch.dtype = torch.float32) -> TensorSpec:
    return TensorSpec(tuple(shape), dtype)


def cost(
    target: Any,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    kind: str | None = None,
    training: bool = False,
    **attrs: Any,
) -> Cost:
    """The registered formula of ``target`` on a call built from literal specs."""
    formula = DEFAULT_REGISTRY.lookup(target)
    assert formula is not None, f"no formula for {target}"
    kind = kind or ("module" if isinstance(target, type) else "function")
    call = OpCall(kind=kind, target=target, inputs=inputs, outputs=outputs, attrs=attrs, training=training)  # type: ignore[arg-type]
    return formula(call)


def torch_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs PyTorch's FlopCounterMode sees in one real forward (autograd on, SDPA on its math
    backend: FlopCounterMode has no entry for the fused CPU kernel)."""
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()
