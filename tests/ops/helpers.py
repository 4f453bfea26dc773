"""Shared helpers of the op tests: OpCalls from plain tuples or from real calls (recorded as the
graph records them), whole analyses of one-op models, and the FlopCounterMode oracle."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from torchscan import crawl_module
from torchscan.graph.calls import ArgumentBinder, module_config
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


def specs(*values: Any) -> tuple[TensorSpec, ...]:
    """The specs of the tensors among ``values`` (nested tuples flattened), in order."""
    found: list[TensorSpec] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(TensorSpec(tuple(value.shape), value.dtype))
        elif isinstance(value, (tuple, list)):
            found.extend(specs(*value))
    return tuple(found)


def _described(value: Any) -> Any:
    """An argument as a described call holds it: tensors as specs, also inside tuples (``index_put``'s indices)."""
    if isinstance(value, tuple):
        return tuple(_described(item) for item in value)
    return TensorSpec(tuple(value.shape), value.dtype) if isinstance(value, torch.Tensor) else value


def module_cost(module: nn.Module, *inputs: torch.Tensor, **kwargs: Any) -> Cost:
    """Our formula's cost of ``module(*inputs, **kwargs)``, its call recorded as the graph records a
    module call (``module_config``: configuration attributes and parameter/buffer specs). The module
    is run once for its outputs: take any reference numbers (running statistics) before."""
    attrs = module_config(module)
    training = module.training
    outputs = module(*inputs, **kwargs)
    formula = DEFAULT_REGISTRY.lookup(type(module))
    assert formula is not None, f"no formula for {type(module).__name__}"
    call = OpCall(
        kind="module",
        target=type(module),
        inputs=specs(*inputs, *kwargs.values()),
        outputs=specs(outputs),
        attrs=attrs,
        training=training,
    )
    return formula(call)


def function_cost(function: Any, *args: Any, **kwargs: Any) -> Cost:
    """Our formula's cost of ``function(*args, **kwargs)``, its arguments bound by name as the graph
    binds a function call's (tensors replaced by their specs)."""
    outputs = function(*args, **kwargs)
    formula = DEFAULT_REGISTRY.lookup(function)
    assert formula is not None, f"no formula for {function}"
    attrs = ArgumentBinder().bind(
        function, tuple(_described(a) for a in args), {k: _described(v) for k, v in kwargs.items()}
    )
    call = OpCall(
        kind="function", target=function, inputs=specs(*args, *kwargs.values()), outputs=specs(outputs), attrs=attrs
    )
    return formula(call)


def method_cost(method: Any, tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Cost:
    """Our formula's cost of the tensor method ``method`` (``torch.Tensor.matmul``…) called on
    ``tensor``, recorded as the graph records a method call (``args`` after ``self``)."""
    outputs = method(tensor, *args, **kwargs)
    formula = DEFAULT_REGISTRY.lookup(method)
    assert formula is not None, f"no formula for {method}"
    attrs = {"args": tuple(_described(a) for a in args), **{k: _described(v) for k, v in kwargs.items()}}
    inputs = specs(tensor, *args, *kwargs.values())
    return formula(OpCall(kind="method", target=method, inputs=inputs, outputs=specs(outputs), attrs=attrs))


def crawled_cost(module: nn.Module, *inputs: torch.Tensor) -> Cost:
    """The totals of a whole analysis (``crawl_module``) of a one-op model, end to end."""
    totals = crawl_module(module, [tuple(x.shape) for x in inputs], batch_size=None, dtype=inputs[0].dtype).totals
    assert totals.complete
    return Cost(flops=totals.flops, macs=totals.macs, dmas=totals.dmas)


def randn(seed: int, *shape: int) -> torch.Tensor:
    """Standard normal float64 values from a private generator (the global RNG is left alone)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def assert_same(reference: torch.Tensor, actual: torch.Tensor) -> None:
    """The reference computed the op: its output equals torch's (float64 on both sides)."""
    torch.testing.assert_close(reference, actual.to(torch.float64), rtol=1e-7, atol=1e-10)
