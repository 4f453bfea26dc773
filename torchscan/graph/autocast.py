"""``torch.autocast`` regions: the state each op of the forward runs under, read where the trace or a
recording makes its node, and set again wherever a pass runs the op on fake tensors.

Autocast is thread-local state, not a graph value: an fx trace runs ``torch.autocast.__enter__`` and
``__exit__`` as plain Python and records none of it, so a graph alone says ``linear -> float32`` where the
forward computes ``linear -> bfloat16`` (and its Python code, reading ``y.dtype``, takes the other branch).
A node made while autocast is enabled carries the state in its ``meta`` under :data:`AUTOCAST`; the passes
that run a node (the shape pass, the memory pass's recordings) run it under :func:`applied` of that state,
by dispatch (shape rules and dispatch memos know nothing of autocast), and every other node with autocast
off, whatever the thread's state is then (inside the traced forward's own region, or the caller's).

The caller's state counts as the forward's first region (``crawl_module`` called under ``torch.autocast``
analyses the model as it would run there): it is read once, carried by the call's inputs
(:attr:`torchscan.inputs.ModelInputs.autocast`), and the analysis itself runs with autocast off. Autocast's
cache of casted weights is off while the analysis runs (a fake tensor must never land in the caller's cache).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import fx

__all__ = [
    "AUTOCAST",
    "AUTOCAST_NODES",
    "DEPTH",
    "DEVICE_TYPES",
    "Autocast",
    "applied",
    "current",
    "describe",
    "enabled",
    "mark",
    "nesting",
]

AUTOCAST = "torchscan_autocast"
"""fx node meta key: the node's :data:`Autocast` state, where not empty."""

AUTOCAST_NODES = "autocast_nodes"
"""Records graph attribute: the names of the nodes made under autocast (a frozenset; absent: none)."""

DEPTH = "torchscan_autocast_depth"
"""fx node meta key: how many autocast regions (enabled or not) the thread was in when the node was made, on the
nodes made since the capture first met autocast enabled (its cast cache lives until the outermost one exits)."""

Autocast = tuple[tuple[str, torch.dtype], ...]
"""``(device type, dtype)`` of each device type autocast is enabled for, in :data:`DEVICE_TYPES` order
(``()``: autocast off)."""

_KNOWN = ("cpu", "cuda", "xpu", "mps", "hpu", "mtia", "maia", "xla", "ipu", "privateuseone")


def _available(device_type: str) -> bool:
    try:
        return bool(torch.amp.is_autocast_available(device_type))
    except Exception:  # a torch without this device type
        return False


DEVICE_TYPES: tuple[str, ...] = tuple(device_type for device_type in _KNOWN if _available(device_type))
"""The device types this torch has an autocast state for."""


enabled = torch._C._is_any_autocast_enabled
"""``enabled()``: whether autocast is enabled for any device type in this thread (torch's C function itself: it is
asked once per node)."""


def current() -> Autocast:
    """This thread's autocast state."""
    if not enabled():
        return ()
    return tuple(
        (device_type, torch.get_autocast_dtype(device_type))
        for device_type in DEVICE_TYPES
        if torch.is_autocast_enabled(device_type)
    )


def nesting() -> int:
    """How many autocast regions this thread is in (entered and not exited, enabled or not)."""
    depth = torch.autocast_increment_nesting()
    torch.autocast_decrement_nesting()  # back as it was: the cache is cleared by a region's exit, not here
    return depth - 1


def mark(node: fx.Node, seen: bool) -> bool:
    """Note on a node just made for an op the thread's autocast state (:data:`AUTOCAST`, where enabled) and region
    depth (:data:`DEPTH`), once the capture has met autocast enabled (``seen``: before this node); whether it has
    now. Nothing is read of a capture that never meets it but one C call per node."""
    if not seen and not enabled():
        return False
    state = current()
    if state:
        node.meta[AUTOCAST] = state
    node.meta[DEPTH] = nesting()
    return True


@contextlib.contextmanager
def applied(state: Autocast) -> Iterator[None]:
    """Autocast exactly as ``state`` says — enabled with its dtype for the device types it names, disabled
    for the others — and its cast cache off; this thread's previous settings put back after."""
    wanted = dict(state)
    saved = [
        (device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        for device_type in DEVICE_TYPES
    ]
    cache = torch.is_autocast_cache_enabled()
    try:
        torch.set_autocast_cache_enabled(False)
        for device_type, _, _ in saved:
            dtype = wanted.get(device_type)
            if dtype is not None:
                torch.set_autocast_dtype(device_type, dtype)
            torch.set_autocast_enabled(device_type, dtype is not None)
        yield
    finally:
        for device_type, was, dtype in saved:
            torch.set_autocast_dtype(device_type, dtype)
            torch.set_autocast_enabled(device_type, was)
        torch.set_autocast_cache_enabled(cache)


def describe(state: Autocast) -> str:
    """``cpu → bfloat16`` (``, `` between device types)."""
    return ", ".join(f"{device_type} → {str(dtype).removeprefix('torch.')}" for device_type, dtype in state)
