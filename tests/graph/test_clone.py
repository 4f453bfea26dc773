"""The copy every capture runs: what ``from_tensor`` would make, structure kept, held state copied,
the user's model untouched."""

from __future__ import annotations

import collections
import functools
import types
import weakref

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

from tests.test_api import assert_same, snapshot
from torchscan import crawl_module
from torchscan.graph.clone import _plain_fake, fake_copy, hooks_of, kept_hook, real_copy

TENSORS = [
    torch.randn(4, 3),
    torch.randn(2, 3, 5).transpose(0, 2).contiguous(),
    nn.Parameter(torch.randn(8)),
    nn.Parameter(torch.randn(3), requires_grad=False),
    torch.tensor(0),
    torch.tensor(7, dtype=torch.int32),
    torch.tensor(1.5, dtype=torch.float64),
    torch.tensor(2.0),
    torch.tensor(float("inf"), dtype=torch.float64),
    nn.Parameter(torch.tensor(1.0)),
    torch.empty(2, 2, device="meta"),
]


@pytest.mark.parametrize("tensor", TENSORS, ids=range(len(TENSORS)))
def test_plain_fake_is_what_from_tensor_makes(tensor: torch.Tensor) -> None:
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    made, reference = _plain_fake(tensor, mode), mode.from_tensor(tensor, static_shapes=True)
    assert made is not None
    for attribute in ("shape", "dtype", "device", "requires_grad", "is_leaf", "item_memo"):
        assert getattr(made, attribute) == getattr(reference, attribute), attribute
    assert made.stride() == reference.stride()
    assert made.untyped_storage().nbytes() == reference.untyped_storage().nbytes()
    assert isinstance(made, nn.Parameter) == isinstance(reference, nn.Parameter)


def test_views_and_tensors_with_attributes_are_left_to_from_tensor() -> None:
    mode = FakeTensorMode()
    base = torch.randn(4, 4)
    tagged = torch.randn(2)
    tagged.tag = "mine"  # type: ignore[attr-defined]
    assert _plain_fake(base[1:], mode) is None
    assert _plain_fake(tagged, mode) is None


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Linear(4, 4)
        self.again = self.block  # the same module twice
        self.head = nn.Linear(4, 4)
        self.head.weight = self.block.weight  # tied
        self.seen: list[int] = []
        self.register_buffer("steps", torch.tensor(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.again(self.block(x)))


def test_fake_copy_keeps_structure_and_leaves_the_model_as_found() -> None:
    model = Shared()
    model.register_forward_hook(lambda *_: None)
    before = snapshot(model)
    clone = fake_copy(model, FakeTensorMode(allow_non_fake_inputs=True)).root
    assert_same(before, snapshot(model))
    assert clone is not model and clone.block is not model.block
    assert clone.again is clone.block and clone.head.weight is clone.block.weight
    assert all(type(t).__name__ == "FakeTensor" for t in (*clone.parameters(), *clone.buffers()))
    assert not clone._forward_hooks and model._forward_hooks
    clone.seen.append(1)
    assert model.seen == []
    assert clone.steps.item_memo == 0


class Holds(nn.Module):
    """A model holding tensors, counters, modules and closures outside its parameters and buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.state = [torch.zeros(3)]
        self.nested = {"a": [{"b": torch.zeros(3)}]}
        self.queue = collections.deque([torch.zeros(3)], maxlen=4)
        self.holder = types.SimpleNamespace(t=torch.zeros(3), calls=0, last=None)
        self.norms = [nn.BatchNorm1d(3)]
        self.generator = torch.Generator().manual_seed(3)
        self.alias = self.fc.weight


@pytest.mark.parametrize("copier", ["fake", "real"])
def test_held_state_is_copied_at_any_depth(copier: str) -> None:
    model = Holds()
    before = snapshot(model)
    held = (model.state[0], model.nested["a"][0]["b"], model.queue[0], model.holder.t)
    values = [tensor.clone() for tensor in held]
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    clone = (fake_copy(model, mode) if copier == "fake" else real_copy(model)).root
    copies = (clone.state[0], clone.nested["a"][0]["b"], clone.queue[0], clone.holder.t)
    for original, copied in zip(held, copies, strict=True):
        assert copied is not original
        assert isinstance(copied, FakeTensor) == (copier == "fake")
    clone.holder.calls += 1
    clone.state.append(1)
    assert clone.queue.maxlen == 4 and clone.norms[0] is not model.norms[0]
    assert clone.alias is clone.fc.weight  # an alias of a parameter stays an alias, in the copy
    if copier == "real":
        for copied in copies:
            copied.add_(1)
        torch.randn(3, generator=clone.generator)
        clone.norms[0].train()(torch.randn(4, 3))
    assert model.holder.calls == 0 and len(model.state) == 1
    assert all(torch.equal(tensor, value) for tensor, value in zip(held, values, strict=True))
    assert torch.equal(
        torch.randn(3, generator=model.generator), torch.randn(3, generator=torch.Generator().manual_seed(3))
    )
    assert int(model.norms[0].num_batches_tracked) == 0
    assert_same(before, snapshot(model))


class Cached(nn.Module):
    """A module holding ``lru_cache`` objects of its own: of a plain function and of one of its methods."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.table = functools.lru_cache(maxsize=4)(torch.ones)
        self.scaled = functools.lru_cache(maxsize=4)(self.scale)

    def scale(self, n: int) -> torch.Tensor:
        return self.fc.weight.new_ones(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[-1])
        return self.fc(x + self.table(n) + self.scaled(n))


@pytest.mark.parametrize("copier", ["fake", "real"])
def test_a_held_lru_cache_is_the_copy_s_own(copier: str) -> None:
    """A copy gets empty caches of its own (the same parameters, the method bound to the copy): the model's
    caches never hold the analysis's values (they held the copy's fake tensors, which the user's next real
    forward returned), and their statistics stay as found."""
    model = Cached()
    x = torch.randn(2, 8)
    expected = model(x)
    found = (model.table.cache_info(), model.scaled.cache_info())
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    clone = (fake_copy(model, mode) if copier == "fake" else real_copy(model)).root
    assert clone.table is not model.table and clone.scaled is not model.scaled
    assert clone.table.cache_parameters() == model.table.cache_parameters()
    assert clone.scaled.__wrapped__.__self__ is clone
    assert clone.table.cache_info().currsize == 0
    crawl_module(model, (8,), batch_size=2)
    assert (model.table.cache_info(), model.scaled.cache_info()) == found
    again = model(x)
    assert type(again) is torch.Tensor and torch.equal(again, expected)


class TiedHead(nn.Module):
    """Reads a tied embedding through a weak reference to its module, and counts the calls there."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.owner = weakref.ref(embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = self.owner()
        assert embedding is not None
        embedding.reads = getattr(embedding, "reads", 0) + 1
        return x @ embedding.weight.t()


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 8)
        self.head = TiedHead(self.embedding)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(ids))


@pytest.mark.parametrize("copier", ["fake", "real"])
def test_a_weak_reference_to_a_module_reaches_the_copy_s(copier: str) -> None:
    """A weak reference to a module of the tree is one to the copy's module: the forward's write there (and
    its read of the weight) never reaches the model (it set ``reads`` on the user's embedding, and the
    user's real weight was a constant of the graph)."""
    model = Tied()
    before = snapshot(model)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    clone = (fake_copy(model, mode) if copier == "fake" else real_copy(model)).root
    assert clone.head.owner() is clone.embedding
    report = crawl_module(model, (5,), dtype=torch.long)
    assert not hasattr(model.embedding, "reads")
    kinds = [report.records.nodes[name]["record"].type_name for name in report.records]
    assert "t" in kinds and "_tensor_constant0" not in report.records  # the weight read as the copy's parameter
    assert_same(before, snapshot(model))


def test_instance_forwards_are_rebound_to_the_copy() -> None:
    model = nn.Sequential(nn.BatchNorm1d(3))
    original = model.forward
    model.forward = lambda x: original(x)  # a closure over the user's bound method
    clone = real_copy(model).root
    clone.train()(torch.randn(4, 3))
    assert int(model[0].num_batches_tracked) == 0 and int(clone[0].num_batches_tracked) == 1
    method = nn.Sequential(nn.BatchNorm1d(3))
    method.forward = types.MethodType(nn.Sequential.forward, method)
    copied = real_copy(method).root
    assert copied.forward.__self__ is copied


def test_user_hooks_are_dropped_and_named_kept_reparametrizations_run() -> None:
    model = nn.Sequential(nn.utils.weight_norm(nn.Linear(4, 4)), nn.ReLU())
    model[1].register_forward_hook(lambda *_: None)
    model.register_forward_pre_hook(lambda *_: None)
    clone = real_copy(model).root
    assert not clone[1]._forward_hooks and not clone._forward_pre_hooks
    assert len(clone[0]._forward_pre_hooks) == 1  # WeightNorm recomputes the copy's own weight
    assert [(hook.module_path, hook.kind) for hook in hooks_of(model)] == [
        ("", "forward pre-hook"),
        ("1", "forward hook"),
    ]


def test_library_output_hooks_are_kept_by_the_function_that_made_them() -> None:
    """A forward hook made by a library's output-capture installer (Hugging Face's) is part of what the model
    computes: kept on the copy (its closure copied) and not named; a hook of the same name and code made
    elsewhere is the user's, dropped and named."""
    output_capturing = pytest.importorskip("transformers.utils.output_capturing")
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    output_capturing.install_output_capuring_hook(model[0], "hidden_states", 0)

    def output_capturing_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        return None

    model[1].register_forward_hook(output_capturing_hook)
    (library,) = model[0]._forward_hooks.values()
    assert kept_hook("_forward_hooks", library) and not kept_hook("_forward_hooks", output_capturing_hook)
    assert not kept_hook("_forward_pre_hooks", library) and not kept_hook("_backward_hooks", library)
    clone = real_copy(model).root
    assert list(clone[0]._forward_hooks.values()) == [library] and not clone[1]._forward_hooks
    assert [(hook.module_path, hook.kind) for hook in hooks_of(model)] == [("1", "forward hook")]


class HoldsADataset(nn.Module):
    """A model that keeps a reference to something huge (a trainer, a dataset) besides small state."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.samples = [(f"image{i}.jpg", i) for i in range(size)]
        self.seen = [0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen[0] += 1
        return self.fc(x)


def test_held_state_past_the_budget_is_shared_and_named() -> None:
    from torchscan.graph.clone import HELD_STATE_BUDGET

    model = HoldsADataset(HELD_STATE_BUDGET + 1)
    report = crawl_module(model, (3,))
    (shared,) = [d for d in report.diagnostics if d.code == "held-state-shared"]
    assert "HoldsADataset.samples" in shared.message and "seen" not in shared.message
    assert model.seen == [0]  # small state is still copied
    small = crawl_module(HoldsADataset(10), (3,))
    assert not small.diagnostics
