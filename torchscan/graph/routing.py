"""How calls on the copy of a model run: routed through each module's own call slot, never a hook.

``nn.Module.__call__`` runs a module's per-instance ``_compiled_call_impl`` first when it is set:
setting it on the copy's modules (and only there) routes every module call to the capture without
patching anything process-wide, and without running the module's hooks or torch's global ones.
Every capture (tracer, recorder, shape pass) runs a module the same way: its kept
re-parametrization pre-hooks (:func:`run_pre_hooks`), then :func:`forward_of` it, then the forward hooks
the copy holds (:func:`run_forward_hooks`).

A copy starts with no hook of the user's (:func:`~torchscan.graph.clone.hooks_of` names them, and they never
see an analysis call): the hooks it holds besides the kept pre-hooks were registered by the model's own code
while the analysis ran it, and are part of what its forward computes. Hugging Face's ``transformers``
collects ``hidden_states`` and ``attentions`` so: its decorators register forward hooks at a model's first
call that asks for them, and read what they collected before returning (LLaVA reads its vision tower's
hidden states inside its forward).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

__all__ = ["RoutedCalls", "forward_of", "has_forward_hooks", "run_forward_hooks", "run_pre_hooks", "wrapped_module"]


class RoutedCalls:
    """Routes every call of the copy's ``modules`` (:attr:`ModelCopy.modules`: its tree and the modules
    it holds elsewhere) to ``make_slot(module)`` for the duration of a ``with`` block, through the
    per-instance ``_compiled_call_impl`` that ``nn.Module.__call__`` calls first: neither the module's
    hooks nor torch's global module hooks run (user callbacks never see analysis calls), and nothing
    outside the copy is touched."""

    def __init__(self, modules: Sequence[nn.Module], make_slot: Callable[[nn.Module], Callable[..., Any]]) -> None:
        self._modules = modules
        self._make_slot = make_slot

    def __enter__(self) -> RoutedCalls:
        for module in self._modules:
            vars(module)["_compiled_call_impl"] = self._make_slot(module)
        return self

    def __exit__(self, *exc: object) -> None:
        for module in self._modules:
            vars(module)["_compiled_call_impl"] = None


def forward_of(module: nn.Module, rebind: Callable[[Any], Any] = lambda function: function) -> Callable[..., Any]:
    """What a call of ``module`` runs, hooks aside: its instance-level ``forward`` (copied with the model)
    or its class's, each function through ``rebind``; a wrapper (``torch.compile``, ``DataParallel``)
    calls the module it wraps."""
    inner = wrapped_module(module)
    if inner is not None:
        return inner
    own = vars(module).get("forward")
    if own is None:
        return types.MethodType(rebind(type(module).forward), module)
    if isinstance(own, types.MethodType) and own.__self__ is module:
        return types.MethodType(rebind(own.__func__), module)
    return own


def run_pre_hooks(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict]:
    """Run the forward pre-hooks a copy kept (torch's weight re-parametrizations) as ``__call__`` would."""
    hooks = vars(module).get("_forward_pre_hooks")
    if not hooks:
        return args, kwargs
    with_kwargs = vars(module).get("_forward_pre_hooks_with_kwargs") or {}
    for key, hook in list(hooks.items()):
        if key in with_kwargs:
            result = hook(module, args, kwargs)
            if result is not None:
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    return args, kwargs


def has_forward_hooks(module: nn.Module) -> bool:
    """Whether ``module`` (of a copy) holds forward hooks: registered by the model's own code as the analysis
    ran it (a copy starts without any)."""
    return bool(vars(module).get("_forward_hooks"))


def run_forward_hooks(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
    """Run the forward hooks ``module`` holds as ``__call__`` would, in order, on the arguments its forward got
    (``args``, ``kwargs``: after its pre-hooks); the output, or what the last hook returning a value returned."""
    state = vars(module)
    hooks = state.get("_forward_hooks")
    if not hooks:
        return output
    with_kwargs = state.get("_forward_hooks_with_kwargs") or {}
    for key, hook in list(hooks.items()):
        result = hook(module, args, kwargs, output) if key in with_kwargs else hook(module, args, output)
        if result is not None:
            output = result
    return output


def wrapped_module(module: nn.Module) -> nn.Module | None:
    """The module a wrapper holds: ``torch.compile``'s ``_orig_mod``, ``DataParallel``/DDP's
    ``module``; None for any other module."""
    if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return module.module
    dynamo = sys.modules.get("torch._dynamo.eval_frame")  # no model is compiled before dynamo is imported
    if dynamo is not None and isinstance(module, dynamo.OptimizedModule):
        return module._orig_mod
    return None
