"""Random draws: the generator's output written, its parameters read, no arithmetic counted.

A draw's own arithmetic (the generator's bit mixing, the transform of uniform bits into a normal, an exponential
or a Bernoulli sample, a multinomial's search) is not counted, as a factory's is not (``torch.rand`` writes its
output: ``DMAs = N_out``): ``FLOPs = MACs = 0`` for every draw. Tensor parameters (``torch.bernoulli(p)``'s
probabilities, ``torch.normal(mean, std)``'s means and deviations, ``multinomial``'s weights, ``poisson``'s
rates, ``x.bernoulli_(p)`` with a tensor ``p``) are read once: ``DMAs = N_params + N_out``. An in-place fill
(``x.uniform_()``, ``x.normal_()``, …) overwrites ``x`` without reading it.
"""

from __future__ import annotations

import torch

from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("sampling")

T = torch.Tensor
aten = torch.ops.aten


@TABLE.register(
    T.uniform_,
    T.normal_,
    T.exponential_,
    T.geometric_,
    T.cauchy_,
    T.log_normal_,
    T.random_,
    T.bernoulli_,
    aten.uniform_.default,
    aten.normal_.default,
    aten.exponential_.default,
    aten.geometric_.default,
    aten.cauchy_.default,
    aten.log_normal_.default,
    aten.random_.default,
    getattr(aten.random_, "from"),  # a Python keyword
    aten.random_.to,
    aten.bernoulli_.float,
    aten.bernoulli_.Tensor,
)
def fill(call: OpCall) -> Cost:
    """A random fill in place (``x.uniform_()``, ``x.normal_()``, ``x.bernoulli_(p)``…): ``x`` written, not read,
    and a tensor parameter read: ``FLOPs = MACs = 0``, ``DMAs = N_out + N_params`` (the tensor arguments after
    ``x``; none for scalar parameters)."""
    return Cost(dmas=call.output.numel + sum(spec.numel for spec in call.inputs[1:]))


@TABLE.register(
    torch.bernoulli,
    T.bernoulli,
    torch.normal,
    torch.poisson,
    torch.multinomial,
    T.multinomial,
    torch.randint,
    torch.randperm,
    aten.bernoulli.default,
    aten.bernoulli.p,
    aten.normal.Tensor_Tensor,
    aten.normal.Tensor_float,
    aten.normal.float_Tensor,
    aten.poisson.default,
    aten.multinomial.default,
    aten.randint.default,
    aten.randint.low,
    aten.randperm.default,
)
def draw(call: OpCall) -> Cost:
    """A draw into a new tensor (``torch.bernoulli(p)``, ``torch.normal(mean, std)``, ``torch.poisson(rates)``,
    ``torch.multinomial(weights, n)``, ``randint``, ``randperm``): its tensor parameters read, its output
    written: ``FLOPs = MACs = 0``, ``DMAs = N_params + N_out`` (``randint_like``, which reads only its argument's
    shape, is a factory as ``rand_like``: :func:`torchscan.ops.shape.factory`)."""
    return Cost(dmas=sum(spec.numel for spec in (*call.inputs, *call.outputs)))
