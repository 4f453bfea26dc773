"""``x.requires_grad`` as a training forward reads it, for the forward's own code (DenseNet's
``memory_efficient`` layers checkpoint only where an input requires grad).

The shape pass answers most ops by shape rules, whose results carry no autograd graph (a fake tensor that
requires grad is made only where an op is dispatched): the flag on its values is not what a real forward's
tensors carry. Read by traced code, it is answered from the graph instead, as autograd would set it with grad
enabled (the capture runs the forward so, whatever the caller's mode): a trainable parameter, or an input that
requires grad, starts it; an op whose inputs hold it passes it on to its floating-point results; a ``detach``, an
op of a grad-disabled region (:data:`~torchscan.graph.grad_mode.NO_GRAD`) and an integer result stop it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import fx, nn
from torch.utils._pytree import tree_leaves

from torchscan.graph.grad_mode import NO_GRAD
from torchscan.records import tensor_leaves

if TYPE_CHECKING:
    from torchscan.graph.shapes import NodeValues

__all__ = ["GradFlow"]

_DETACHING = frozenset({torch.detach, torch.Tensor.detach, torch.Tensor.detach_})
"""Functions whose result requires no grad (``call_method`` nodes name them by their method names)."""

_DETACHING_METHODS = frozenset({"detach", "detach_"})


class GradFlow:
    """Whether each node's result requires grad in a training forward, asked node by node (memoized: the graph
    only grows while it is asked). ``values``: the shape pass's, by node name; ``modules``: the model copy's
    modules by path."""

    def __init__(self, values: Mapping[str, NodeValues], modules: Mapping[str, nn.Module]) -> None:
        self._values, self._modules = values, modules
        self._flags: dict[fx.Node, bool] = {}
        self._trainable: dict[str, bool] = {}

    def requires_grad(self, node: fx.Node) -> bool:
        """Whether ``node``'s result requires grad (its inputs' asked first, without recursion)."""
        flags = self._flags
        stack = [node]
        while stack:
            top = stack[-1]
            if top in flags:
                stack.pop()
                continue
            waiting = [source for source in top.all_input_nodes if source not in flags]
            if waiting and top.op not in ("placeholder", "get_attr"):
                stack.extend(waiting)
                continue
            flags[top] = self._own(top)
            stack.pop()
        return flags[node]

    def _own(self, node: fx.Node) -> bool:
        values = self._values.get(node.name)
        if values is None:
            return False
        if node.op in ("placeholder", "get_attr"):  # an input's own flag, a parameter's (trainable)
            return any(isinstance(leaf, torch.Tensor) and leaf.requires_grad for leaf in tree_leaves(values.result))
        if NO_GRAD in node.meta or not any(
            spec.dtype.is_floating_point or spec.dtype.is_complex for spec in tensor_leaves(values.output)
        ):
            return False
        if node.op == "call_method" and node.target in _DETACHING_METHODS:
            return False
        if node.op == "call_function" and node.target in _DETACHING:
            return False
        if node.op == "call_method" and node.target == "requires_grad_":
            flag = node.args[1] if len(node.args) > 1 else node.kwargs.get("requires_grad", True)
            return bool(flag)
        if node.op == "call_module" and self._owns_trainable(str(node.target)):
            return True
        return any(self._flags[source] for source in node.all_input_nodes)

    def _owns_trainable(self, path: str) -> bool:
        found = self._trainable.get(path)
        if found is None:
            module = self._modules.get(path)
            found = module is not None and any(p.requires_grad for p in module.parameters())
            self._trainable[path] = found
        return found
