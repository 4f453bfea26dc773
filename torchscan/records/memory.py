"""The frozen result records of the memory pass (bytes throughout)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from torchscan.records.frozen import frozen_record

__all__ = ["ActivationPeak", "CpuMeasurement", "MeasuredStep", "MemoryReport", "TrainingEstimate"]


@frozen_record
class ActivationPeak:
    """Static peak of live activation bytes in inference (graph inputs included).

    ``node`` is the fx node during whose execution the peak is reached (its new outputs counted),
    ``module_path`` where it sits; ``timeline`` gives ``live_i`` per node in execution order.
    """

    bytes: int
    input_bytes: int
    node: str
    module_path: str
    timeline: tuple[tuple[str, int], ...] = ()


@frozen_record
class TrainingEstimate:
    """One training step's memory for one optimizer; ``peak_bytes`` is the whole step's peak.

    ``peak = params + buffers + optimizer_state + max(forward, backward, step)`` where forward
    is the live activations with saved tensors kept, backward the remaining saved tensors plus
    live activation gradients plus parameter gradients so far, and step ``grads + transient``.
    ``peak_phase`` names the phase that wins; ``phases`` gives each phase's bytes (``forward``,
    ``backward``, ``step``, in that order: the first of equal maxima wins).
    """

    optimizer: str
    param_bytes: int
    buffer_bytes: int
    grad_bytes: int
    optimizer_state_bytes: int
    saved_activation_bytes: int
    peak_bytes: int
    peak_phase: str
    phases: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (``phases`` as ``{"forward": bytes, …}``)."""
        return {**asdict(self), "phases": dict(self.phases)}


@frozen_record
class MeasuredStep:
    """One real steady-state training step on CPU (``optimizer``): its measured peak (live tensor
    bytes over the step + parameters, buffers, optimizer state and inputs) beside the estimate's."""

    optimizer: str
    measured_bytes: int
    static_bytes: int

    @property
    def relative_error(self) -> float:
        """``static / measured − 1``."""
        return self.static_bytes / self.measured_bytes - 1


@frozen_record
class CpuMeasurement:
    """Real passes on CPU (``summary(..., measure="cpu")``): the live tensor bytes of one no-grad
    forward (inputs included, like the static peak) and of one training step per optimizer;
    ``available`` False (and no numbers) when they were not run, ``note`` says why."""

    available: bool
    note: str
    activation_peak_bytes: int = 0
    static_activation_peak_bytes: int = 0
    training: tuple[MeasuredStep, ...] = ()

    @property
    def relative_error(self) -> float | None:
        """``static / measured − 1`` of the inference peak."""
        return (
            self.static_activation_peak_bytes / self.activation_peak_bytes - 1 if self.activation_peak_bytes else None
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": "cpu",
            "available": self.available,
            "note": self.note,
            "activation_peak_bytes": self.activation_peak_bytes,
            "static_activation_peak_bytes": self.static_activation_peak_bytes,
            "relative_error": self.relative_error,
            "training": [{**asdict(step), "relative_error": step.relative_error} for step in self.training],
        }


@frozen_record
class MemoryReport:
    """The memory section of a report (bytes throughout).

    ``measured`` holds a real measurement when one was asked for (``summary(measure=True)``),
    else None; ``backward_flops``/``backward_macs`` follow
    :func:`torchscan.passes.memory.backward_flops.backward_costs`.
    """

    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    output_bytes: int
    activation_peak_bytes: int
    peak_node: str
    peak_module_path: str
    saved_activation_bytes: int
    backward_flops: int
    backward_macs: int
    training: tuple[TrainingEstimate, ...]
    measured: Any = None

    @property
    def model_bytes(self) -> int:
        """``param_bytes + buffer_bytes``."""
        return self.param_bytes + self.buffer_bytes

    @property
    def inference_peak_bytes(self) -> int:
        """Model plus static activation peak: what one forward needs in total."""
        return self.model_bytes + self.activation_peak_bytes

    def training_for(self, optimizer: str) -> TrainingEstimate:
        """The estimate for ``optimizer`` (a key of ``OPTIMIZERS``); KeyError if not estimated."""
        for estimate in self.training:
            if estimate.optimizer == optimizer:
                return estimate
        raise KeyError(optimizer)

    def to_dict(self) -> dict[str, Any]:
        measured = self.measured.to_dict() if self.measured is not None else None
        return {
            "model_bytes": self.model_bytes,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "activation_peak_bytes": self.activation_peak_bytes,
            "peak_node": self.peak_node,
            "peak_module_path": self.peak_module_path,
            "saved_activation_bytes": self.saved_activation_bytes,
            "backward_flops": self.backward_flops,
            "backward_macs": self.backward_macs,
            "training": [estimate.to_dict() for estimate in self.training],
            "measured": measured,
        }
