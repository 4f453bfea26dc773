"""Hostile cases for the "zero side effects" promise (issue 11): after an analysis, successful or not,
the model and the process are exactly as found.

Every analysis here goes through :func:`crawl_checked`, which snapshots the model
(:func:`~tests.reliability.snapshot.snapshot_model`) and the process
(:func:`~tests.reliability.snapshot.snapshot_globals`) before and asserts both unchanged after. On top
of that each test checks the outcome: the report's numbers, or the error's type and what it names.
A crash (any exception that is not a ``TorchscanError``) fails the test.
"""

from __future__ import annotations

import collections
import os
import random
import re
import resource
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

try:
    import numpy
except ImportError:  # the generators test then skips
    numpy = None

from tests.reliability.snapshot import describe_changes, restore_globals, snapshot_globals, snapshot_model
from torchscan import crawl_module, sweep
from torchscan.errors import InputError, ShapeError, TorchscanError
from torchscan.report import Diagnostic, Report

REPO = Path(__file__).resolve().parents[2]

Outcome = Report | TorchscanError


def crawl_checked(model: nn.Module, *args: Any, **kwargs: Any) -> Outcome:
    """``crawl_module(model, *args, **kwargs)``: the report or the ``TorchscanError`` raised, after
    asserting that the model and the process's global state are unchanged (the report's memory section,
    made on its first read, read too)."""
    model_before, globals_before = snapshot_model(model), snapshot_globals()
    try:
        try:
            outcome: Outcome = crawl_module(model, *args, **kwargs)
            getattr(outcome, "memory", None)  # made on this read
        except TorchscanError as error:
            outcome = error
        changes = [
            describe_changes(model_before, snapshot_model(model), "the model"),
            describe_changes(globals_before, snapshot_globals(), "the process's global state"),
        ]
        if any(changes):
            raise AssertionError("\n".join(filter(None, changes)) + f"\nthe analysis gave: {summary(outcome)}")
    finally:
        restore_globals(globals_before)  # a leak fails this test only, not the tests after it
    return outcome


def summary(outcome: Outcome) -> str:
    """One line on an analysis outcome: the error, or the report's capture, output shapes and diagnostics."""
    if isinstance(outcome, TorchscanError):
        return f"{type(outcome).__name__}: {str(outcome).splitlines()[0] if str(outcome) else ''}"
    context = outcome.context
    return f"a report ({context.capture}, outputs {list(context.output_shapes)}, diagnostics {codes(outcome)})"


def report_of(outcome: Outcome) -> Report:
    """``outcome`` if it is a report; else fail with the error."""
    if not isinstance(outcome, Report):
        pytest.fail(f"expected a report, got {type(outcome).__name__}: {outcome}")
    return outcome


def codes(report: Report) -> list[str]:
    return [diagnostic.code for diagnostic in report.diagnostics]


def text_of(diagnostic: Diagnostic) -> str:
    return " ".join((diagnostic.message, *diagnostic.nodes))


# -- 1. torch.compile ---------------------------------------------------------------------------

COMPILED_SCRIPT = textwrap.dedent(
    """
    import torch
    from torch import nn

    from tests.reliability.snapshot import assert_unchanged, snapshot_globals, snapshot_model
    from torchscan import crawl_module
    from torchscan.errors import TorchscanError

    torch.manual_seed(0)
    plain = nn.Linear(4, 4)
    expected = crawl_module(plain, (4,)).totals
    compiled = torch.compile(plain)
    model_before, globals_before = snapshot_model(compiled), snapshot_globals()
    try:
        report = crawl_module(compiled, (4,))
    except TorchscanError as error:
        print("clean error:", type(error).__name__, error)
    else:
        found = (report.totals.params, report.totals.macs)
        assert found == (expected.params, expected.macs), (found, expected)
    assert_unchanged(model_before, snapshot_model(compiled), "the compiled model")
    assert_unchanged(globals_before, snapshot_globals(), "the process's global state")
    print("ANALYSED OK")
    """
)


def test_torch_compile_analysed_or_clean_error(tmp_path: Path) -> None:
    """``torch.compile(nn.Linear(4, 4))``: the plain Linear's params and MACs, or a clean TorchscanError;
    never a crash (run in a subprocess, so a segfault fails this test instead of killing pytest)."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"), "TRITON_CACHE_DIR": str(tmp_path)}
    try:
        result = subprocess.run(
            [sys.executable, "-c", COMPILED_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the analysis of a compiled model hung (> {error.timeout} s)")
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "ANALYSED OK" in result.stdout


# -- 3. state held outside parameters and buffers ---------------------------------------------------

BRANCHES = ("traceable", "shape_branch", "value_branch", "nonzero")
"""How each model's forward ends, to send the analysis down each capture: fx traces it; a branch on a
size (fx cannot trace it, a recording on fake tensors can); a branch on values (``if x.sum() > 0``:
neither can); ``torch.nonzero`` (a data-dependent output shape)."""


def branch_on(x: torch.Tensor, y: torch.Tensor, branch: str) -> torch.Tensor:
    if branch == "shape_branch":
        if x.size(0) > 1:
            y = y + 1
    elif branch == "value_branch":
        if x.sum() > 0:
            y = y + 1
    elif branch == "nonzero":
        y = y + torch.nonzero(x).sum()
    return y


class Holder:
    """A plain object (neither a module nor a container) held by a model."""

    def __init__(self) -> None:
        self.t = torch.zeros(3)
        self.calls = 0


Mutate = Callable[["HeldState", torch.Tensor], torch.Tensor]


class HeldState(nn.Module):
    """A Linear, then ``mutate`` (which changes ``self.state`` in place), then ``branch_on``."""

    def __init__(self, branch: str, state: Any, mutate: Mutate) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.branch = branch
        self.state = state
        self.mutate = mutate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mutate(self, self.fc(x))
        return branch_on(x, y, self.branch)


def check_held_state(branch: str, state: Any, mutate: Mutate) -> HeldState:
    """Analyse a :class:`HeldState` in train mode: a report of the right shape, nothing changed."""
    torch.manual_seed(0)
    model = HeldState(branch, state, mutate).train()
    report = report_of(crawl_checked(model, (3,), batch_size=2))
    assert report.context.output_shapes == ((2, 3),)
    return model


def add_to_first(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    model.state[0].add_(1)
    return y


def momentum_update(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    """A momentum encoder's update (MoCo, BYOL, DINO's teacher): every parameter moved in place under no_grad."""
    with torch.no_grad():
        for parameter in model.fc.parameters():
            parameter.mul_(0.5).add_(1)
    return y


def buffers_zeroed(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    for buffer in model.buffers():
        buffer.zero_()
    return y


def state_dict_written(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        for value in model.state_dict().values():
            value.fill_(7)
    return y


def parameters_read(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    """What Hugging Face's ``self.dtype`` does: the first floating parameter's dtype, read off ``parameters()``."""
    first = next(parameter for parameter in model.parameters() if parameter.is_floating_point())
    return y.to(device=first.device, dtype=first.dtype)


@pytest.mark.parametrize("branch", BRANCHES)
@pytest.mark.parametrize("mutate", [momentum_update, buffers_zeroed, state_dict_written, parameters_read])
def test_tensors_reached_through_parameters_buffers_and_state_dict_unchanged(branch: str, mutate: Mutate) -> None:
    """The traced copy holds the model's own parameters and buffers (fakes are made only where an op runs on
    them); a read by name gets the trace's proxy, but a walk of the tensor dicts (``parameters()``,
    ``buffers()``, ``state_dict()``) got the user's tensors, and an in-place update through it (a momentum
    encoder's EMA in the forward) changed the user's weights. Every walk now gets fakes."""
    torch.manual_seed(0)
    model = HeldState(branch, torch.zeros(3), mutate).train()
    model.register_buffer("count", torch.ones(3))
    report = report_of(crawl_checked(model, (3,), batch_size=2))  # no tensor of the model changed
    assert report.context.output_shapes == ((2, 3),)
    assert torch.equal(model.count, torch.ones(3))


@pytest.mark.parametrize("branch", BRANCHES)
def test_held_list_tensor_unchanged(branch: str) -> None:
    """``self.state = [t]``, ``self.state[0].add_(1)`` in forward: ``t`` unchanged."""
    model = check_held_state(branch, [torch.zeros(3)], add_to_first)
    assert torch.equal(model.state[0], torch.zeros(3))


def add_to_key(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    model.state["t"].add_(1)
    return y


@pytest.mark.parametrize("branch", BRANCHES)
def test_held_dict_tensor_unchanged(branch: str) -> None:
    """``self.state = {"t": t}``, ``self.state["t"].add_(1)`` in forward: ``t`` unchanged."""
    model = check_held_state(branch, {"t": torch.zeros(3)}, add_to_key)
    assert torch.equal(model.state["t"], torch.zeros(3))


def add_to_nested(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    model.state["inner"][0].add_(1)
    return y


@pytest.mark.parametrize("branch", BRANCHES)
def test_held_nested_list_in_dict_tensor_unchanged(branch: str) -> None:
    """``self.state = {"inner": [t]}``, ``self.state["inner"][0].add_(1)`` in forward: ``t`` unchanged."""
    model = check_held_state(branch, {"inner": [torch.zeros(3)]}, add_to_nested)
    assert torch.equal(model.state["inner"][0], torch.zeros(3))


@pytest.mark.parametrize("branch", BRANCHES)
def test_held_deque_tensor_unchanged(branch: str) -> None:
    """``self.state = deque([t])``, ``self.state[0].add_(1)`` in forward: ``t`` unchanged."""
    model = check_held_state(branch, collections.deque([torch.zeros(3)]), add_to_first)
    assert torch.equal(model.state[0], torch.zeros(3))


def add_to_attribute(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    model.state.t.add_(1)
    return y


@pytest.mark.parametrize("branch", BRANCHES)
def test_held_object_tensor_unchanged(branch: str) -> None:
    """``self.state = Holder()``, ``self.state.t.add_(1)`` in forward: ``t`` unchanged."""
    model = check_held_state(branch, Holder(), add_to_attribute)
    assert torch.equal(model.state.t, torch.zeros(3))


def count_call(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    model.state.calls += 1
    return y


@pytest.mark.parametrize("branch", BRANCHES)
def test_held_object_counter_unchanged(branch: str) -> None:
    """``self.state.calls += 1`` in forward (a plain int in a plain object): still 0."""
    model = check_held_state(branch, Holder(), count_call)
    assert model.state.calls == 0


def keep_last(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    model.state.last = y
    return y


@pytest.mark.parametrize("branch", BRANCHES)
def test_held_object_gets_no_proxy_or_fake(branch: str) -> None:
    """``self.state.last = y`` in forward: no fx Proxy, fake tensor (or any value) is left behind."""
    model = check_held_state(branch, Holder(), keep_last)
    assert not hasattr(model.state, "last")


def run_listed_norm(model: HeldState, y: torch.Tensor) -> torch.Tensor:
    return model.state[0](y)


@pytest.mark.parametrize("branch", BRANCHES)
def test_batchnorm_in_plain_list_unchanged(branch: str) -> None:
    """A BatchNorm1d held in a plain list attribute (not a sub-module), called in train mode: its
    running stats and ``num_batches_tracked`` unchanged."""
    model = check_held_state(branch, [nn.BatchNorm1d(3)], run_listed_norm)
    assert_fresh_batchnorm(model.state[0])


def assert_fresh_batchnorm(norm: nn.BatchNorm1d) -> None:
    assert norm.running_mean is not None and norm.running_var is not None and norm.num_batches_tracked is not None
    assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
    assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))
    assert int(norm.num_batches_tracked) == 0


# -- 4. instance-level forward -------------------------------------------------------------------------


class ValueBranchNorm(nn.Module):
    """Linear, BatchNorm1d, then a branch on values (fx and fake tensors cannot capture it)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.fc(x))
        if y.sum() > 0:
            y = y * 2
        return y


def test_instance_lambda_forward_keeps_batchnorm_stats() -> None:
    """``net.forward = lambda x: orig(x)`` (``orig`` bound to the user's net), train mode: BN stats unchanged."""
    torch.manual_seed(0)
    net = ValueBranchNorm().train()
    orig = net.forward
    net.forward = lambda x: orig(x)
    report = report_of(crawl_checked(net, (3,), batch_size=2))
    assert report.context.output_shapes == ((2, 3),)
    assert_fresh_batchnorm(net.bn)


def test_instance_method_forward_keeps_batchnorm_stats() -> None:
    """``net.forward = types.MethodType(f, net)``, train mode: BN stats unchanged."""

    def forward(self: ValueBranchNorm, x: torch.Tensor) -> torch.Tensor:
        return ValueBranchNorm.forward(self, x)

    torch.manual_seed(0)
    net = ValueBranchNorm().train()
    net.forward = types.MethodType(forward, net)
    report = report_of(crawl_checked(net, (3,), batch_size=2))
    assert report.context.output_shapes == ((2, 3),)
    assert_fresh_batchnorm(net.bn)


def test_instance_forward_closure_counter_unchanged() -> None:
    """``net.forward`` a closure that counts its calls in a list it closes over (not held by the model):
    the count stays 0 whichever capture runs (a copy of the model shares the closure's cells)."""
    torch.manual_seed(0)
    net = ValueBranchNorm().train()
    calls = [0]
    orig = net.forward

    def counting_forward(x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return orig(x)

    net.forward = counting_forward
    report = report_of(crawl_checked(net, (3,), batch_size=2))
    assert report.context.output_shapes == ((2, 3),)
    assert calls == [0]
    assert_fresh_batchnorm(net.bn)


# -- 5. a model wrong at a big input ---------------------------------------------------------------------

REAL_CALLS: list[tuple[int, ...]] = []
"""Shapes of the real (not fake, not meta, not fx Proxy) inputs :class:`WrongAtBigInput` was called with;
outside the model, so a copy of the model still counts here."""


class WrongAtBigInput(nn.Module):
    """Conv2d(3, 8, 3) then Linear(10, 10): wrong for any image input (the Linear gets the last dim 2046)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if type(x) is torch.Tensor and x.device.type != "meta":  # ``type`` first: safe on an fx Proxy
            REAL_CALLS.append(tuple(x.shape))
        return self.fc(self.conv(x))


def test_shape_error_at_big_input_runs_no_real_forward() -> None:
    """(3, 2048, 2048) into a model that cannot take it: a ShapeError naming ``fc`` and the shape, no
    real forward (its conv alone would allocate 128 MiB), and the peak RSS grows by under 100 MiB."""
    REAL_CALLS.clear()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    outcome = crawl_checked(WrongAtBigInput(), (3, 2048, 2048))
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024  # KiB on Linux
    assert isinstance(outcome, ShapeError), outcome
    assert "fc" in outcome.message and "2046" in outcome.message
    assert REAL_CALLS == [], f"the analysis ran the model for real on {REAL_CALLS}"
    assert growth_mib < 100, f"peak RSS grew by {growth_mib:.0f} MiB"


# -- 6. the RNG ----------------------------------------------------------------------------------------


class ValueBranch(nn.Module):
    """A Linear then ``if x.sum() > 0``: neither fx nor fake tensors can capture it; the branch taken
    changes the FLOPs, so a report that depends on random inputs shows it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        if x.sum() > 0:
            y = y * 2 + 1
        return y


class ValueBranchMismatch(nn.Module):
    """A branch on values and a Conv2d -> Linear shape mismatch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.sum() > 0:
            y = y * 2
        return self.fc(y.flatten(1))


def test_rng_state_unchanged_after_fallback_analysis() -> None:
    """The global RNG state is the same after analysing a model only a fallback capture can take."""
    torch.manual_seed(0)
    model = ValueBranch()
    state = torch.get_rng_state()
    report_of(crawl_checked(model, (3,), batch_size=2))
    assert torch.equal(torch.get_rng_state(), state)


def test_rng_state_unchanged_after_failed_analysis() -> None:
    """The global RNG state is the same after an analysis that fails (shape mismatch behind a value branch)."""
    torch.manual_seed(0)
    model = ValueBranchMismatch()
    state = torch.get_rng_state()
    outcome = crawl_checked(model, (3, 8, 8))
    assert isinstance(outcome, TorchscanError), outcome
    assert torch.equal(torch.get_rng_state(), state)


class HostDraws(nn.Module):
    """A forward that draws from Python's ``random`` and NumPy's global generator (a layer skipped at random),
    captured by fx (``branch="traceable"``), by one real forward (``"value_branch"``) or failing (``"mismatch"``)."""

    def __init__(self, branch: str) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3 if branch != "mismatch" else 4)
        self.skip = nn.Linear(3, 3)
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x) if random.random() < 2.0 and (numpy is None or numpy.random.rand() < 2.0) else x
        if self.branch == "value_branch" and x.sum() > 0:
            y = y * 2
        return self.skip(y)


@pytest.mark.parametrize("branch", ["traceable", "value_branch", "mismatch"])
def test_python_and_numpy_generators_unchanged(branch: str) -> None:
    """Python's and NumPy's global random states are the same after an analysis whose forward draws from
    them, however it is captured, and after one that fails."""
    if numpy is None:
        pytest.skip("NumPy is not installed")
    model = HostDraws(branch)
    python_state, numpy_state = random.getstate(), numpy.random.get_state()
    outcome = crawl_checked(model, (3,), batch_size=2)
    assert isinstance(outcome, TorchscanError) == (branch == "mismatch"), outcome
    if branch == "traceable":  # a sweep too (the capture reused)
        sweep(model, [{"batch_size": 1}, {"batch_size": 3}], input_shape=(3,))
    assert random.getstate() == python_state
    after = numpy.random.get_state()
    assert after[0] == numpy_state[0] and (after[1] == numpy_state[1]).all() and after[2:] == numpy_state[2:]


class SettingForward(nn.Module):
    """A forward that sets one of torch's process-wide settings."""

    def __init__(self, setting: str) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.setting = setting

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.setting == "dtype":
            torch.set_default_dtype(torch.float64)
        elif self.setting == "threads":
            torch.set_num_threads(torch.get_num_threads() + 1)
        elif self.setting == "deterministic":
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.set_float32_matmul_precision("medium")
        return self.fc(x)


def _torch_settings() -> tuple[object, ...]:
    return (
        torch.get_default_dtype(),
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_float32_matmul_precision(),
    )


@pytest.mark.parametrize("setting", ["dtype", "threads", "deterministic", "precision"])
def test_torch_settings_unchanged_by_a_forward_that_sets_them(setting: str) -> None:
    """The default dtype, the thread count, deterministic algorithms and the matmul precision are as found
    after analysing a model whose forward sets one of them."""
    found = _torch_settings()
    report_of(crawl_checked(SettingForward(setting), (3,), batch_size=2))
    assert _torch_settings() == found


def test_value_branch_reports_identical_over_20_calls() -> None:
    """Twenty analyses of a model with ``if x.sum() > 0`` give identical totals, rows and output shapes."""
    torch.manual_seed(0)
    model = ValueBranch()
    reports = [report_of(crawl_checked(model, (3,), batch_size=2)) for _ in range(20)]
    first = reports[0]
    for index, report in enumerate(reports[1:], start=2):
        assert report.totals == first.totals, f"call {index}: {report.totals} != {first.totals}"
        assert report.rows == first.rows, f"call {index}: rows differ"
        assert report.context.output_shapes == first.context.output_shapes


# -- 7. the most specific error wins ----------------------------------------------------------------------


class FloatTokenGPT(nn.Module):
    """A GPT-2-like token embedding and head, with a branch on values after the embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(50, 8)
        self.head = nn.Linear(8, 50)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.wte(ids)
        if h.sum() > 0:
            h = h * 2
        return self.head(h)


def test_float_token_ids_error_names_the_dtype() -> None:
    """Float token ids (the default input dtype) into an Embedding, in a model fx cannot trace: the error
    is about the ids' dtype, not fx's "control flow" message."""
    torch.manual_seed(0)
    outcome = crawl_checked(FloatTokenGPT(), (16,))
    assert isinstance(outcome, TorchscanError), outcome
    message = str(outcome)
    assert re.search(r"\bLong\b|\bInt\b|float|integer|dtype", message), message
    assert "control flow" not in message, message


# -- 8. raw errors become TorchscanErrors ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 10**9, 10**9), (2**70,)], ids=["3x1e9x1e9", "2**70"])
def test_oversized_input_shape_is_input_error(shape: tuple[int, ...]) -> None:
    """An input too big to describe (its byte size or a dim overflows int64): an InputError naming the dim."""
    outcome = crawl_checked(nn.ReLU(), shape)
    assert isinstance(outcome, InputError), outcome
    assert str(shape[-1]) in str(outcome), str(outcome)


class ReturnsGenerator(nn.Module):
    def forward(self, x: torch.Tensor) -> Any:
        y = x * 2
        return (t for t in (y,))


class ReturnsObject(nn.Module):
    def forward(self, x: torch.Tensor) -> Any:
        del x
        return object()


@pytest.mark.parametrize("cls", [ReturnsGenerator, ReturnsObject], ids=["generator", "object"])
def test_forward_returning_non_tensor_is_torchscan_error(cls: type[nn.Module]) -> None:
    """A forward returning a generator or a bare ``object()``: a TorchscanError (not fx's SyntaxError)."""
    outcome = crawl_checked(cls(), (3,))
    assert isinstance(outcome, TorchscanError), outcome


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_legacy_weight_norm_analysed_or_clean_error() -> None:
    """``torch.nn.utils.weight_norm(nn.Linear(4, 4))`` (legacy, cannot be deep-copied): a report whose
    params are g + v + bias (4 + 16 + 4), or a clean TorchscanError; ``weight`` never recomputed."""
    torch.manual_seed(0)
    model = torch.nn.utils.weight_norm(nn.Linear(4, 4))
    assert sum(p.numel() for p in model.parameters()) == 24
    outcome = crawl_checked(model, (4,))
    if isinstance(outcome, Report):
        assert outcome.totals.params == 24


@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")
def test_scripted_shape_error_is_shape_error_and_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    """A TorchScript Conv2d(3, 8, 3) -> flatten -> Linear(10, 10): a ShapeError naming the flat shape
    (288), and nothing written to stderr (no fake-tensor log)."""
    torch.manual_seed(0)
    model = torch.jit.script(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(10, 10)))
    capfd.readouterr()
    outcome = crawl_checked(model, (3, 8, 8))
    stderr = capfd.readouterr().err
    assert isinstance(outcome, ShapeError), outcome
    assert "288" in outcome.message
    assert stderr == "", stderr


# -- 9. user hooks ---------------------------------------------------------------------------------------------

HOOK_CALLS: collections.Counter[str] = collections.Counter()
"""Calls of the hooks below (outside the model): an analysis must never run a user's hook."""


def flatten_input_hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    HOOK_CALLS["flatten_input_hook"] += 1
    return (args[0].flatten(1),)


def reshape_output_hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    HOOK_CALLS["reshape_output_hook"] += 1
    return output.reshape(output.shape[0], 2, -1)


class ConvThenFlatLinear(nn.Module):
    """Conv2d(3, 3, 1) then Linear(12, 4): needs its ``fc`` input flattened (by a pre-hook)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


class OneLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def names_hook(text: str, hook: Callable[..., Any], path: str) -> bool:
    """Whether ``text`` names the hook: by its function name, or as a hook of the module at ``path``."""
    return hook.__name__ in text or ("hook" in text.lower() and re.search(rf"\b{re.escape(path)}\b", text) is not None)


def diagnoses_hook(report: Report, hook: Callable[..., Any], path: str) -> bool:
    return any(
        diagnostic.code == "hooks-ignored" and names_hook(text_of(diagnostic), hook, path)
        for diagnostic in report.diagnostics
    )


def test_pre_hook_reshaping_input_counted_or_named() -> None:
    """A forward pre-hook on ``fc`` flattens its input: a correct report (output (1, 4), ``fc`` 48 MACs),
    or a report / ShapeError that names the ignored hook; the hook never runs, the hook dicts unchanged."""
    torch.manual_seed(0)
    model = ConvThenFlatLinear()
    model.fc.register_forward_pre_hook(flatten_input_hook)
    calls = dict(HOOK_CALLS)
    outcome = crawl_checked(model, (3, 2, 2))
    assert dict(HOOK_CALLS) == calls, "the analysis ran the user's hook"
    if isinstance(outcome, Report):
        correct = outcome.context.output_shapes == ((1, 4),) and outcome.row("fc").macs == 48
        assert correct or diagnoses_hook(outcome, flatten_input_hook, "fc"), (outcome.context, outcome.diagnostics)
    else:
        assert isinstance(outcome, ShapeError), outcome
        assert names_hook(outcome.message, flatten_input_hook, "fc"), outcome.message


def test_forward_hook_reshaping_output_counted_or_named() -> None:
    """A forward hook on ``fc`` reshapes its output to (1, 2, 2): the report's output shape is the real
    model's, or a diagnostic names the ignored hook; the hook never runs, the hook dicts unchanged."""
    torch.manual_seed(0)
    model = OneLinear()
    model.fc.register_forward_hook(reshape_output_hook)
    calls = dict(HOOK_CALLS)
    report = report_of(crawl_checked(model, (4,)))
    assert dict(HOOK_CALLS) == calls, "the analysis ran the user's hook"
    with torch.no_grad():
        real_shape = tuple(model(torch.zeros(1, 4)).shape)
    assert real_shape == (1, 2, 2)
    correct = report.context.output_shapes == (real_shape,)
    assert correct or diagnoses_hook(report, reshape_output_hook, "fc"), (report.context, report.diagnostics)


# -- 10. wrappers -----------------------------------------------------------------------------------------------


class SmallConvNet(nn.Module):
    """Conv2d(3, 4, 3), ReLU, flatten, Linear(144, 10), for (3, 8, 8) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


SMALL_SHAPE = (3, 8, 8)


def test_data_parallel_totals_equal_inner_model() -> None:
    """``nn.DataParallel(model)`` (on CPU it just wraps): the inner model's params and MACs."""
    torch.manual_seed(0)
    inner = SmallConvNet()
    expected = crawl_module(inner, SMALL_SHAPE).totals
    report = report_of(crawl_checked(nn.DataParallel(inner), SMALL_SHAPE))
    assert (report.totals.params, report.totals.macs) == (expected.params, expected.macs), report.totals


def test_exported_module_totals_equal_plain_model() -> None:
    """``torch.export.export(model, (x,)).module()``: the plain model's params and MACs, and no
    ``unused-params`` diagnostic."""
    torch.manual_seed(0)
    plain = SmallConvNet().eval()
    expected = crawl_module(plain, SMALL_SHAPE).totals
    exported = torch.export.export(plain, (torch.zeros(1, *SMALL_SHAPE),)).module()
    report = report_of(crawl_checked(exported, SMALL_SHAPE))
    assert (report.totals.params, report.totals.macs) == (expected.params, expected.macs), report.totals
    assert "unused-params" not in codes(report), report.diagnostics


def test_leaf_forward_override_counted_or_named() -> None:
    """``model.fc.forward = lambda x: orig_fc(x) * 2``: the extra multiply is counted (more FLOPs than
    the plain model), or a diagnostic names the override of ``fc``'s forward."""
    torch.manual_seed(0)
    model = SmallConvNet()
    plain = crawl_module(model, SMALL_SHAPE).totals
    orig_fc = model.fc.forward
    model.fc.forward = lambda x: orig_fc(x) * 2
    report = report_of(crawl_checked(model, SMALL_SHAPE))
    counted = report.totals.flops > plain.flops
    named = any(
        "forward" in diagnostic.message and ("fc" in diagnostic.nodes or re.search(r"\bfc\b", diagnostic.message))
        for diagnostic in report.diagnostics
    )
    assert counted or named, (report.totals, report.diagnostics)


NORMS: dict[str, Callable[[], nn.Module]] = {
    "parametrizations.weight_norm": lambda: parametrizations.weight_norm(nn.Linear(4, 4)),
    "parametrizations.spectral_norm": lambda: parametrizations.spectral_norm(nn.Linear(4, 4)),
    "legacy_spectral_norm": lambda: torch.nn.utils.spectral_norm(nn.Linear(4, 4)),
}


@pytest.mark.parametrize("name", NORMS)
def test_norm_reparametrization_analysed_and_unchanged(name: str) -> None:
    """Weight and spectral norm (parametrizations, and legacy spectral norm) in train mode: a report whose
    params are the ones the module holds, and every buffer (spectral norm's ``u``/``v``) unchanged."""
    torch.manual_seed(0)
    model = NORMS[name]().train()
    held = sum(p.numel() for p in model.parameters())
    buffers = {path: buffer.clone() for path, buffer in model.named_buffers()}
    report = report_of(crawl_checked(model, (4,)))
    assert report.totals.params == held
    assert report.context.output_shapes == ((1, 4),)
    for path, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[path]), path
