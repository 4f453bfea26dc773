"""How calls on the copy of a model run: routed through each module's own call slot, never a hook.

``nn.Module.__call__`` runs a module's per-instance ``_compiled_call_impl`` first when it is set:
setting it on the copy's modules (and only there) routes every module call to the capture without
patching anything process-wide, and without running the module's hooks or torch's global ones.
Every capture (tracer, recorder, shape pass) runs a module the same way: its kept
re-parametrization pre-hooks (:func:`run_pre_hooks`), then :func:`forward_of` it, then the forward hooks
the copy holds (:func:`run_forward_hooks`).

A module's ``.to(dtype)``, ``.float()`` or ``.half()`` called inside a forward (a router casting its classifier)
runs on the copy too: ``nn.Module._apply`` swaps each parameter in place whenever it is a ``FakeTensor``, and
a fake refuses the swap (torch holds a weak reference to it). While calls are routed, each module of the copy
whose class keeps ``nn.Module``'s own ``_apply`` runs :func:`apply_on_copy` instead, per instance: the cast
tensors replace the old ones in the copy's dicts, nothing is swapped, and a cast that changes nothing
(``.to`` of the dtype a tensor has) leaves the tensor as it was.

A copy starts with no hook of the user's (:func:`~torchscan.graph.clone.hooks_of` names them, and they never
see an analysis call): the hooks it holds are part of what its forward computes — registered by the model's own
code while the analysis ran it, or kept from the model (:func:`~torchscan.graph.clone.kept_hook`). Hugging Face's
``transformers`` collects ``hidden_states`` and ``attentions`` so: its decorators register forward hooks at a
model's first call that asks for them, and read what they collected before returning (LLaVA reads its vision
tower's hidden states inside its forward); a model called so before its analysis holds them, and the copy keeps them.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "ROUTED_STATE",
    "CastInForward",
    "RoutedCalls",
    "apply_on_copy",
    "forward_of",
    "has_forward_hooks",
    "run_forward_hooks",
    "run_pre_hooks",
    "unrouted",
    "wrapped_module",
]

_CALL_SLOT, _APPLY = "_compiled_call_impl", "_apply"

ROUTED_STATE = frozenset({_CALL_SLOT, _APPLY})
"""The attributes :class:`RoutedCalls` sets on the copy's modules: not state of the model."""

_MODULE_APPLY = nn.Module._apply


def apply_on_copy(
    module: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True, *, replace: bool = True
) -> nn.Module:
    """``nn.Module._apply`` as a module of the copy runs it (``.to``, ``.float()``, ``.half()``, ``.type``): each
    child's in turn, then each parameter cast by ``fn`` and put in the parameter dict as a new parameter (its
    ``requires_grad`` kept) where the cast made a new tensor, each buffer likewise replaced by its cast. Nothing is
    swapped or set in place: the tensors the copy held before are left as they were (a fake refuses a swap; a real
    one may be the user's). ``replace=False`` (a trace, whose graph cannot hold a tensor made outside it): a cast
    that would make a new tensor raises :class:`CastInForward` instead."""
    if recurse:
        for child in module.children():
            child._apply(fn)
    for tensors in (module._parameters, module._buffers):
        for key, tensor in list(tensors.items()):
            if tensor is None:
                continue
            with torch.no_grad():
                cast = fn(tensor)
            if cast is tensor:
                continue
            if not replace:
                made = (
                    f"{cast.dtype}, {cast.device}"
                    if (cast.dtype, cast.device) != (tensor.dtype, tensor.device)
                    else f"another layout (strides {tuple(cast.stride())})"
                )
                raise CastInForward(
                    f"the forward casts {type(module).__name__}.{key} ({tensor.dtype}, {tensor.device}) to {made} "
                    "(a module's .to, .float() or .half()): a graph cannot hold it"
                )
            if tensors is module._parameters:  # made as torch makes it, unseen by a recording (not an op)
                with torch._C.DisableTorchFunction():
                    cast = nn.Parameter(cast, requires_grad=tensor.requires_grad)
            tensors[key] = cast
    return module


class CastInForward(RuntimeError):
    """A forward cast a module's tensors to another dtype or device while it was traced."""


class RoutedCalls:
    """Routes every call of the copy's ``modules`` (:attr:`ModelCopy.modules`: its tree and the modules
    it holds elsewhere) to ``make_slot(module)`` for the duration of a ``with`` block, through the
    per-instance ``_compiled_call_impl`` that ``nn.Module.__call__`` calls first: neither the module's
    hooks nor torch's global module hooks run (user callbacks never see analysis calls), and nothing
    outside the copy is touched."""

    def __init__(self, modules: Sequence[nn.Module], make_slot: Callable[[nn.Module], Callable[..., Any]]) -> None:
        self._modules = modules
        self._make_slot = make_slot

    apply = staticmethod(apply_on_copy)
    """What a module's ``_apply`` runs while calls are routed, bound to the module."""

    def __enter__(self) -> RoutedCalls:
        apply = self.apply
        owns_apply: dict[type, bool] = {}
        for module in self._modules:
            state = vars(module)
            state[_CALL_SLOT] = self._make_slot(module)
            cls = type(module)
            plain = owns_apply.get(cls)
            if plain is None:
                plain = owns_apply[cls] = cls._apply is _MODULE_APPLY
            if plain:  # a class's own ``_apply`` (moving tensors it holds elsewhere) is left to run as written
                state[_APPLY] = types.MethodType(apply, module)
        return self

    def __exit__(self, *exc: object) -> None:
        for module in self._modules:
            unrouted(vars(module))


def unrouted(state: dict[str, Any]) -> None:
    """A module's attribute dict as it was before calls were routed (:data:`ROUTED_STATE` cleared)."""
    state[_CALL_SLOT] = None
    state.pop(_APPLY, None)


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
