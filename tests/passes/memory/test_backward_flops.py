"""Backward cost per node: stated against literal forward costs, and against FlopCounterMode counting
a real backward."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchscan import crawl_module
from torchscan.passes.memory import backward_costs
from torchscan.passes.params import collect_params
from torchscan.records import Cost


def _by_path(report_graph: object, model: nn.Module, costs: dict[str, Cost]) -> dict[str, Cost]:
    """``backward_costs`` of ``model``'s graph, with the forward cost given per module path."""
    names = {data["record"].module_path: name for name, data in report_graph.nodes(data=True)}  # type: ignore[attr-defined]
    result = backward_costs(report_graph, {names[path]: cost for path, cost in costs.items()}, collect_params(model))  # type: ignore[arg-type]
    return {path: result[names[path]] for path in costs if names[path] in result}


def test_each_gradient_taken_costs_one_forward() -> None:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    graph = crawl_module(model, (8,), batch_size=4).records
    forward = {"0": Cost(3, 5, 7), "1": Cost(11, 13, 17), "2": Cost(19, 23, 29)}
    # "0": its input is raw data: only dL/dW, once its forward; "1" (ReLU): once; "2": dL/dx and dL/dW
    assert _by_path(graph, model, forward) == {"0": Cost(3, 5, 7), "1": Cost(11, 13, 17), "2": Cost(38, 46, 58)}


def test_a_frozen_layer_costs_its_input_gradient_only() -> None:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4).requires_grad_(False), nn.Linear(4, 2))
    graph = crawl_module(model, (8,), batch_size=4).records
    forward = {"0": Cost(3, 5, 7), "2": Cost(19, 23, 29), "3": Cost(31, 37, 41)}
    # "2" is frozen but its input requires grad: dL/dx only (1×); nothing upstream of "0" needs grad
    assert _by_path(graph, model, forward) == {"0": Cost(3, 5, 7), "2": Cost(19, 23, 29), "3": Cost(62, 74, 82)}


def test_nothing_before_the_first_trainable_layer_costs_anything() -> None:
    model = nn.Sequential(nn.Linear(8, 32).requires_grad_(False), nn.ReLU(), nn.Linear(32, 4))
    graph = crawl_module(model, (8,), batch_size=4).records
    forward = {"0": Cost(3, 5, 7), "1": Cost(11, 13, 17), "2": Cost(19, 23, 29)}
    # neither "0" nor the ReLU's output requires grad: no backward; "2" takes dL/dW only
    assert _by_path(graph, model, forward) == {"2": Cost(19, 23, 29)}


class _TiedHead(nn.Module):
    """A language-model head: the embedding's weight, read by a functional linear in a module that
    owns no parameter."""

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight)


class _TiedModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.mix, self.head = nn.Embedding(10, 6), nn.Linear(6, 6), _TiedHead()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(self.embed(tokens)), self.embed.weight)


def _backward_macs(model: nn.Module, inputs: torch.Tensor) -> int:
    """MACs of a real backward, counted by FlopCounterMode (which counts 2 FLOPs per MAC of the
    products: mm, addmm, bmm, convolutions; the forward's subtracted)."""
    with FlopCounterMode(display=False) as forward:
        model(inputs)
    with FlopCounterMode(display=False) as both:
        model(inputs).sum().backward()
    return (both.get_total_flops() - forward.get_total_flops()) // 2


def test_backward_macs_equal_a_real_backward() -> None:
    """Three layers, batch 4: "2" takes dL/dx and dL/dW (2 · 4·32·4 = 1024 MACs), "0" dL/dW only
    (4·8·32 = 1024); the ReLU none — 2048 in all, what a real backward multiplies."""
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    assert crawl_module(model, (8,), batch_size=4).memory.backward_macs == 2048
    assert _backward_macs(model, torch.randn(4, 8)) == 2048


def test_a_functional_linear_on_a_weight_owned_elsewhere_takes_both_gradients() -> None:
    """The head (3 tokens × 6 features × 10 classes = 180 forward MACs) takes dL/dx and dL/dW of the
    tied embedding weight (360); "mix" (3·6·6 = 108) dL/dW and dL/dx (the embedding's output
    requires grad: 216). The embedding's backward (a scatter-add) has no MACs. 576 in all."""
    model = _TiedModel()
    tokens = torch.tensor([[1, 4, 7]])
    assert crawl_module(model, args=(tokens,)).memory.backward_macs == 576
    assert _backward_macs(model, tokens) == 576


class _Gram(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x).transpose(0, 1) @ self.b(x)


def test_a_product_of_two_activations_takes_both_gradients() -> None:
    """Batch 2: ``a(x)ᵀ · b(x)`` is 6·2·6 = 72 forward MACs, its backward 2 · 72 = 144 (one gradient
    per factor); "a" and "b" read raw data: dL/dW only, 2·4·6 = 48 each. 240 in all."""
    model = _Gram()
    assert crawl_module(model, (4,), batch_size=2).memory.backward_macs == 240
    assert _backward_macs(model, torch.randn(2, 4)) == 240
