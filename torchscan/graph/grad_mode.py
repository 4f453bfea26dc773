"""Grad mode regions of a forward (``with torch.no_grad():``, ``torch.inference_mode()``,
``torch.set_grad_enabled(False)``): the ops run there build no autograd graph, so a training step saves nothing
for them and gives no gradient through them.

Like autocast (:mod:`~torchscan.graph.autocast`), grad mode is thread-local state that an fx trace runs as plain
Python and records nowhere. The capture runs the forward with grad enabled whatever the caller's mode; a node made
while the forward's own code has it disabled carries :data:`NO_GRAD` in its ``meta``, the shape pass runs it so,
and the memory pass reads it off the records graph (:data:`NO_GRAD_NODES`): a frozen backbone, a momentum
encoder's update or a teacher run under ``no_grad`` then saves nothing, gets no gradient and no optimizer state,
and costs no backward FLOPs.
"""

from __future__ import annotations

import torch
from torch import fx

__all__ = ["NO_GRAD", "NO_GRAD_NODES", "mark"]

NO_GRAD = "torchscan_no_grad"
"""fx node meta key: True where the forward's code had grad mode disabled when the node's op ran."""

NO_GRAD_NODES = "no_grad_nodes"
"""Records graph attribute: the names of the nodes made with grad mode disabled (a frozenset; absent: none)."""


def mark(node: fx.Node) -> None:
    """Note on a node just made for an op whether grad mode is disabled (one C call)."""
    if not torch.is_grad_enabled():
        node.meta[NO_GRAD] = True
