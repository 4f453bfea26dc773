"""The snapshot helper itself: it sees every kind of change the side-effect tests rely on it for (so a
passing side-effect test means "unchanged", not "not looked at"), and :func:`restore_globals` puts
process-wide changes back."""

from __future__ import annotations

import collections
import gc
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from tests.reliability.snapshot import (
    LOGGERS,
    assert_unchanged,
    describe_changes,
    restore_globals,
    snapshot_globals,
    snapshot_model,
)


class Box:
    def __init__(self) -> None:
        self.count = 0
        self.t = torch.zeros(2)


class Tracked(nn.Module):
    """A model with state in every place the snapshot walks."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)
        self.held = {"list": [torch.zeros(2)], "deque": collections.deque([torch.zeros(2)]), "set": {1, 2}}
        self.box = Box()
        self.box.self_ref = self.box  # a cycle
        self.listed = [nn.BatchNorm1d(2)]
        cell = [0]
        self.closure = lambda: cell
        self.tag = "a"


def no_grad(change: Callable[[Tracked], Any]) -> Callable[[Tracked], None]:
    def apply(model: Tracked) -> None:
        with torch.no_grad():
            change(model)

    return apply


MODEL_CHANGES: dict[str, Callable[[Tracked], Any]] = {
    "parameter value": no_grad(lambda m: m.fc.weight.add_(1)),
    "parameter replaced": lambda m: setattr(m.fc, "weight", nn.Parameter(m.fc.weight.detach().clone())),
    "requires_grad": lambda m: m.fc.bias.requires_grad_(False),
    "grad": lambda m: setattr(m.fc.weight, "grad", torch.ones_like(m.fc.weight)),
    "buffer in place": lambda m: m.bn.num_batches_tracked.add_(1),
    "training flag": lambda m: m.bn.eval(),
    "forward hook": lambda m: m.fc.register_forward_hook(lambda *args: None),
    "state-dict hook": lambda m: m.fc._register_state_dict_hook(lambda *args: None),
    "attribute added": lambda m: setattr(m, "extra", 1),
    "plain attribute": lambda m: setattr(m, "tag", "b"),
    "list tensor in place": lambda m: m.held["list"][0].add_(1),
    "deque appended": lambda m: m.held["deque"].append(torch.zeros(1)),
    "set grown": lambda m: m.held["set"].add(3),
    "object counter": lambda m: setattr(m.box, "count", 1),
    "object tensor in place": lambda m: m.box.t.add_(1),
    "listed module buffer": lambda m: m.listed[0].running_mean.add_(1),
    "closure cell": lambda m: m.closure().append(1),
    "instance forward": lambda m: setattr(m, "forward", lambda x: x),
}


@pytest.mark.parametrize("change", MODEL_CHANGES)
def test_snapshot_model_sees(change: str) -> None:
    torch.manual_seed(0)
    model = Tracked()
    before = snapshot_model(model)
    assert_unchanged(before, snapshot_model(model))  # a second look alone changes nothing
    MODEL_CHANGES[change](model)
    assert describe_changes(before, snapshot_model(model)), f"{change} not seen"


GLOBAL_CHANGES: dict[str, Callable[[], Any]] = {
    "nn.Module.__call__": lambda: setattr(nn.Module, "__call__", lambda self, *a, **k: None),
    "math.sqrt": lambda: setattr(math, "sqrt", lambda x: x),
    "rng": lambda: torch.rand(1),
    "grad mode": lambda: torch.set_grad_enabled(False),
    "default dtype": lambda: torch.set_default_dtype(torch.float64),
    "gc": gc.disable,
    "logger level": lambda: logging.getLogger(LOGGERS[0]).setLevel(logging.CRITICAL),
    "logger filter": lambda: logging.getLogger(LOGGERS[1]).addFilter(lambda record: False),
}


@pytest.mark.parametrize("change", GLOBAL_CHANGES)
def test_snapshot_globals_sees_and_restores(change: str) -> None:
    before = snapshot_globals()
    try:
        GLOBAL_CHANGES[change]()
        assert describe_changes(before, snapshot_globals()), f"{change} not seen"
    finally:
        restore_globals(before)
    assert_unchanged(before, snapshot_globals(), "after restore_globals")
