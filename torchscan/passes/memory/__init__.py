"""Memory from the graph: output bytes, the static peak of inference, a training estimate.

Pure functions over the graph records; every result is a frozen record. One job per module:

- :mod:`.records` — the results (:class:`ActivationPeak`, :class:`TrainingEstimate`,
  :class:`MemoryReport`);
- :mod:`.storage` — output bytes (``Σ numel · itemsize`` of the fake run's dtype) and storage
  keys: views and in-place results share their base's storage and allocate nothing;
- :mod:`.liveness` — a storage is live from its producer to its last reader (inputs and
  outputs held throughout, module-call arguments until the call returns), extended by the
  eager-Python rules of :mod:`.eager` (names bound in ``forward``, ``+=`` in place), which read
  source lines through :mod:`.eager_names` and stack traces through :mod:`.frames`;
- :mod:`.internal` — what a call allocates and saves inside itself, recorded at the ATen level
  on fake tensors once per distinct call signature (the calls worth it: composite or unknown ops,
  in-place ops, products of strided operands); :mod:`.kernels` gives the buffers that kernels make
  and fake kernels do not (declared workspaces) their real size there;
- :mod:`.peak` — ``live_i = Σ live storages + Σ new at i + workspace_i``, ``peak = max_i live_i``;
- :mod:`.families`, :mod:`.grads`, :mod:`.saved` — what autograd keeps per op family;
- :mod:`.training` — optimizer state and a simulated backward: the training-step peak;
- :mod:`.backward_flops` — backward cost per node;
- :mod:`.estimate`, :mod:`.rows` — the report's memory section and per-row output bytes.

Parameters and buffers (and views of them) are model memory, never activations.
"""

from torchscan.passes.memory.backward_flops import backward_costs
from torchscan.passes.memory.context import CapturedMemory, MemoryPlan, PlanMemo, captured_memory
from torchscan.passes.memory.estimate import estimate_memory
from torchscan.passes.memory.frames import CONTAINER_MODULES, LIBRARY_MODULES, container_modules, library_modules
from torchscan.passes.memory.internal import CallMemory, NodeMemory, Replay
from torchscan.passes.memory.liveness import HELD_OUTPUTS
from torchscan.passes.memory.peak import static_peak, workspace
from torchscan.passes.memory.rows import row_output_bytes, with_output_bytes
from torchscan.passes.memory.saved import saved_for_backward
from torchscan.passes.memory.storage import output_bytes
from torchscan.passes.memory.training import OPTIMIZERS, Optimizer, training_estimates
from torchscan.records import ActivationPeak, MemoryReport, TrainingEstimate

__all__ = [
    "CONTAINER_MODULES",
    "HELD_OUTPUTS",
    "LIBRARY_MODULES",
    "OPTIMIZERS",
    "ActivationPeak",
    "CallMemory",
    "CapturedMemory",
    "MemoryPlan",
    "MemoryReport",
    "NodeMemory",
    "Optimizer",
    "PlanMemo",
    "Replay",
    "TrainingEstimate",
    "backward_costs",
    "captured_memory",
    "container_modules",
    "estimate_memory",
    "library_modules",
    "output_bytes",
    "row_output_bytes",
    "saved_for_backward",
    "static_peak",
    "training_estimates",
    "with_output_bytes",
    "workspace",
]
