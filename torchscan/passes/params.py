"""Parameters and buffers of the (original) model: ownership, trainability, bytes."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from torchscan.records.frozen import frozen_record

__all__ = ["ModuleParams", "ParamEntry", "ParamSummary", "collect_params", "parameter_readers"]


@frozen_record
class ParamEntry:
    """One parameter tensor owned by a module."""

    name: str
    shape: tuple[int, ...]
    numel: int
    trainable: bool
    nbytes: int


@frozen_record
class ModuleParams:
    """Parameters and buffers registered directly on one module.

    A tensor registered on several modules (tied weights) is owned by the first in
    ``named_modules`` order; the others count it in ``shared`` and name it in ``tied``.
    """

    params: int = 0
    trainable: int = 0
    shared: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    entries: tuple[ParamEntry, ...] = ()
    tied: tuple[tuple[str, int], ...] = ()
    """(the owner's path of the parameter, bytes) of each trainable tensor registered here that another
    module owns (tied weights): the memory pass accumulates one gradient per tensor."""


_NONE = ModuleParams()
"""The record of a module that registers no parameter and no buffer (frozen: shared by all of them)."""


@frozen_record
class ParamSummary:
    by_module: Mapping[str, ModuleParams]
    params: int
    trainable: int
    param_bytes: int
    buffer_bytes: int
    packing: tuple[str, ...] = ()
    """Paths of the modules holding packed weights (:func:`_packed_names`), for :func:`parameter_readers`."""


def collect_params(model: nn.Module, modules: Sequence[tuple[str, nn.Module]] | None = None) -> ParamSummary:
    """Count each parameter and buffer tensor once, by identity, under its first owner (``modules``:
    ``model.named_modules()`` when the caller has it)."""
    seen: set[int] = set()
    owners: dict[int, str] = {}
    by_module: dict[str, ModuleParams] = {}
    layouts: dict[type, tuple[str, ...]] = {}  # packed attributes by class (the first instance's: set in __init__)
    packing: list[str] = []
    total = trainable_total = param_bytes_total = buffer_bytes_total = 0
    for path, module in model.named_modules() if modules is None else modules:
        kind = type(module)
        packed_names = layouts.get(kind)
        if packed_names is None:
            packed_names = layouts[kind] = _packed_names(module)
        if not module._parameters and not module._buffers and not packed_names:  # most modules: one record for all
            by_module[path] = _NONE
            continue
        params = trainable = shared = param_bytes = buffer_bytes = 0
        entries: list[ParamEntry] = []
        tied: list[tuple[str, int]] = []
        if packed_names:
            packing.append(path)
        for name, tensor in _packed(module, packed_names, seen):
            entry = ParamEntry(name, tuple(tensor.shape), tensor.numel(), False, tensor.numel() * tensor.element_size())
            entries.append(entry)
            params += entry.numel
            param_bytes += entry.nbytes
        for name, tensor in module._parameters.items():  # named_parameters(recurse=False), no generator
            if tensor is None:
                continue
            if id(tensor) in seen:
                shared += tensor.numel()
                if tensor.requires_grad and id(tensor) in owners:
                    tied.append((owners[id(tensor)], tensor.numel() * tensor.element_size()))
                continue
            seen.add(id(tensor))
            owners[id(tensor)] = f"{path}.{name}" if path else name
            entry = ParamEntry(
                name, tuple(tensor.shape), tensor.numel(), tensor.requires_grad, tensor.numel() * tensor.element_size()
            )
            entries.append(entry)
            params += entry.numel
            trainable += entry.numel * entry.trainable
            param_bytes += entry.nbytes
        for tensor in module._buffers.values():  # named_buffers(recurse=False)
            if tensor is None or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            buffer_bytes += tensor.numel() * tensor.element_size()
        by_module[path] = ModuleParams(
            params, trainable, shared, param_bytes, buffer_bytes, tuple(entries), tuple(dict.fromkeys(tied))
        )
        total += params
        trainable_total += trainable
        param_bytes_total += param_bytes
        buffer_bytes_total += buffer_bytes
    return ParamSummary(by_module, total, trainable_total, param_bytes_total, buffer_bytes_total, tuple(packing))


def _packed_names(module: nn.Module) -> tuple[str, ...]:
    """The attributes of ``module`` holding packed weights: a torch script object with an ``unpack`` method
    (``torch.ao``'s quantized linear, convolution and embedding layers keep their int8 weight and float bias so,
    as neither parameter nor buffer)."""
    return tuple(
        name
        for name, value in vars(module).items()
        if isinstance(value, torch.ScriptObject) and value._has_method("unpack")
    )


def _packed(module: nn.Module, names: tuple[str, ...], seen: set[int]) -> list[tuple[str, torch.Tensor]]:
    """The tensors the packed weights of ``module`` at ``names`` hold, unpacked (each object once, by identity):
    ``name.weight`` and ``name.bias`` (torch's layers unpack to ``(weight, bias)``; an embedding to its weight),
    counted as parameters that get no gradient (no optimizer sees them)."""
    found: list[tuple[str, torch.Tensor]] = []
    for name in names:
        value = vars(module).get(name)
        if not isinstance(value, torch.ScriptObject) or id(value) in seen:
            continue
        seen.add(id(value))
        tensors = [leaf for leaf in tree_leaves(value.unpack()) if isinstance(leaf, torch.Tensor)]
        found.extend((f"{name}.{part}", tensor) for part, tensor in zip(("weight", "bias"), tensors, strict=False))
    return found


def parameter_readers(
    model: nn.Module,
    calls: Iterable[str],
    reads: Iterable[str],
    modules: Sequence[tuple[str, nn.Module]] | None = None,
    packing: Sequence[str] = (),
    ran: Collection[str] = (),
) -> frozenset[str]:
    """Paths of the modules (first owners, as :func:`collect_params` counts them) whose parameters the
    forward reads: every parameter of each called module (``calls``: module paths, sub-modules
    included) and each parameter read as an attribute (``reads``: parameter paths); ``modules``:
    ``model.named_modules()`` when the caller has it; ``packing``: :attr:`ParamSummary.packing` (the modules
    holding packed weights, read where they or a module above them is called, or where ops of theirs or of their
    parent's ran: ``ran``, the module paths of the graph's nodes, for a recorded forward whose layers are ops)."""
    owners: dict[int, str] = {}
    by_path: dict[str, nn.Module] = {}
    for path, module in model.named_modules() if modules is None else modules:
        by_path.setdefault(path, module)
        for tensor in module._parameters.values():  # parameters(recurse=False), duplicates skipped below
            if tensor is not None:
                owners.setdefault(id(tensor), path)

    def submodule(path: str) -> nn.Module:
        found = by_path.get(path)
        return found if found is not None else model.get_submodule(path)

    found: set[str] = set()
    for path in dict.fromkeys(calls):
        try:
            module = submodule(path)
        except AttributeError:  # not a path of the model (a bare-op model's own call)
            continue
        tensors = module._parameters.values() if not module._modules else module.parameters()  # a leaf: no walk
        found.update(owners[id(tensor)] for tensor in tensors if tensor is not None and id(tensor) in owners)
        if packing:  # packed weights (quantized layers): read where their holder or a module above it is called
            found.update(owner for owner in packing if not path or owner == path or owner.startswith(f"{path}."))
    found.update(owner for owner in packing if owner in ran or owner.rpartition(".")[0] in ran)
    for path in reads:
        owner_path, _, name = path.rpartition(".")
        try:
            tensor = getattr(submodule(owner_path), name, None)
        except AttributeError:
            continue
        if isinstance(tensor, nn.Parameter) and id(tensor) in owners:
            found.add(owners[id(tensor)])
    return frozenset(found)
