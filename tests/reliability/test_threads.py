"""Concurrent analyses (issue 11): four threads analysing different models at once get the serial
reports, a fifth thread training an MLP meanwhile gets bit-identical losses, and afterwards the
process and the models are as found and a plain forward works.

The threaded run happens once (:func:`threaded_run`, module scope); each test checks one end state.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from tests.reliability.snapshot import Snapshot, assert_unchanged, restore_globals, snapshot_globals, snapshot_model
from torchscan import crawl_module
from torchscan.report import Report

JOIN_TIMEOUT_S = 120.0
"""Time all threads together get to finish; a thread still alive after it counts as hung."""

ANALYSES_PER_THREAD = 5
TRAINING_STEPS = 50
MAX_TRAINING_RUNS = 200


class ResidualNet(nn.Module):
    """Conv, BatchNorm, ReLU, a residual add, global average pool, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv1(x)))
        y = y + self.conv2(y)
        return self.head(y.mean((2, 3)))


def transformer_encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10).eval(), (3, 32, 32)),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(num_classes=10).train(), (3, 32, 32)),
    "transformer_encoder": (transformer_encoder, (8, 32)),
    "residual": (lambda: ResidualNet().train(), (3, 16, 16)),
}
"""Small models (some in train mode, so BatchNorm buffers are live) and their input shapes."""

BATCH_SIZE = 2
"""Train-mode BatchNorm needs more than one value per channel (MobileNet's last blocks are 1x1 at 32x32)."""


def analyse(name: str, model: nn.Module) -> Report:
    return crawl_module(model, MODELS[name][1], batch_size=BATCH_SIZE)


NAMES = tuple(MODELS)


def signature(report: Report) -> tuple[Any, ...]:
    """What must not depend on concurrency: totals, row names, row and model output shapes."""
    return (
        report.totals,
        tuple(row.name for row in report.rows),
        tuple(row.output_shape for row in report.rows),
        report.context.output_shapes,
    )


def difference(seen: tuple[Any, ...], expected: tuple[Any, ...]) -> str:
    """The first difference between two :func:`signature` values, in words."""
    for part, mine, theirs in zip(
        ("totals", "row names", "row output shapes", "output shapes"), seen, expected, strict=True
    ):
        if mine == theirs:
            continue
        if isinstance(mine, tuple) and isinstance(theirs, tuple) and part.startswith("row"):
            index = next(
                (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b), min(len(mine), len(theirs))
            )
            got = mine[index] if index < len(mine) else "<end>"
            want = theirs[index] if index < len(theirs) else "<end>"
            return f"{part} differ at row {index}: {got!r} != serial {want!r} ({len(mine)} vs {len(theirs)} rows)"
        return f"{part}: {mine!r} != serial {theirs!r}"
    return "no difference"


def train_losses() -> list[float]:
    """Losses of 50 SGD steps of a small MLP (``nn.Linear`` modules, so module calls are exercised);
    weights and data come from its own generator (built on ``meta`` then filled: the global RNG is
    neither read nor advanced), so the losses are bit-identical run after run."""
    generator = torch.Generator().manual_seed(1234)
    mlp = nn.Sequential(nn.Linear(8, 16, device="meta"), nn.Tanh(), nn.Linear(16, 1, device="meta"))
    mlp = mlp.to_empty(device="cpu")
    with torch.no_grad():
        for parameter in mlp.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.05)
    inputs = torch.randn(TRAINING_STEPS, 32, 8, generator=generator)
    targets = inputs @ torch.randn(8, 1, generator=generator)
    losses = []
    for x, target in zip(inputs, targets, strict=True):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(mlp(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@dataclass
class ThreadedRun:
    """What the threaded run saw, and the serial references."""

    serial: dict[str, tuple[Any, ...]]
    baseline_losses: list[float]
    globals_before: Snapshot
    models_before: dict[str, Snapshot]
    models: dict[str, nn.Module]
    reports: dict[int, list[tuple[str, tuple[Any, ...]]]] = field(default_factory=dict)
    training_runs: list[list[float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    hung: list[str] = field(default_factory=list)
    globals_after: Snapshot | None = None
    plain_forward_error: str | None = None


def guarded(run: ThreadedRun, name: str, target: Callable[[], None]) -> Callable[[], None]:
    def body() -> None:
        try:
            target()
        except BaseException:
            run.errors.append(f"{name}:\n{traceback.format_exc()}")

    return body


@pytest.fixture(scope="module")
def threaded_run() -> ThreadedRun:
    torch.manual_seed(0)
    models = {name: factory() for name, (factory, _) in MODELS.items()}
    run = ThreadedRun(
        serial={name: signature(analyse(name, models[name])) for name in NAMES},
        baseline_losses=train_losses(),
        globals_before=snapshot_globals(),
        models_before={name: snapshot_model(model) for name, model in models.items()},
        models=models,
    )
    start = threading.Barrier(len(NAMES) + 1, timeout=JOIN_TIMEOUT_S)
    analyses_done = threading.Event()

    def analyst(index: int) -> None:
        found = run.reports.setdefault(index, [])
        start.wait()
        for k in range(ANALYSES_PER_THREAD):
            name = NAMES[(index + k) % len(NAMES)]
            found.append((name, signature(analyse(name, models[name]))))

    def train() -> None:
        start.wait()
        while not analyses_done.is_set() and len(run.training_runs) < MAX_TRAINING_RUNS:
            run.training_runs.append(train_losses())
            time.sleep(0.001)

    analysts = [
        threading.Thread(target=guarded(run, f"analyst {i}", lambda i=i: analyst(i)), name=f"analyst-{i}", daemon=True)
        for i in range(len(NAMES))
    ]
    trainer = threading.Thread(target=guarded(run, "trainer", train), name="trainer", daemon=True)
    for thread in (*analysts, trainer):
        thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for thread in analysts:
        thread.join(max(0.0, deadline - time.monotonic()))
    analyses_done.set()
    trainer.join(max(1.0, deadline - time.monotonic()))
    run.hung = [thread.name for thread in (*analysts, trainer) if thread.is_alive()]
    run.globals_after = snapshot_globals()
    run.plain_forward_error = plain_forward_error()
    restore_globals(run.globals_before)  # a leak fails these tests only, not the tests after them
    return run


def plain_forward_error() -> str | None:
    """Run a plain torchvision ResNet-18 forward (eval mode: at 32x32 the last BatchNorm sees one value
    per channel, which train mode rejects) with the RNG state put back after; the error, if any."""
    state = torch.get_rng_state()
    try:
        with torch.no_grad():
            output = torchvision.models.resnet18().eval()(torch.zeros(1, 3, 32, 32))
        return None if output.shape == (1, 1000) else f"output shape {tuple(output.shape)}"
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        torch.set_rng_state(state)


def test_threads_finish_without_error(threaded_run: ThreadedRun) -> None:
    """Every thread finished within the timeout and raised nothing."""
    assert not threaded_run.hung, f"threads still running after {JOIN_TIMEOUT_S} s: {threaded_run.hung}"
    assert not threaded_run.errors, "\n".join(threaded_run.errors)


def test_threaded_reports_equal_serial(threaded_run: ThreadedRun) -> None:
    """4 threads x 5 analyses of different models at once: each report equals the serial one
    (totals, row names, row and model output shapes)."""
    analyst_errors = [error for error in threaded_run.errors if error.startswith("analyst")]
    assert sum(map(len, threaded_run.reports.values())) == len(NAMES) * ANALYSES_PER_THREAD, "\n".join(analyst_errors)
    for index, found in threaded_run.reports.items():
        for k, (name, seen) in enumerate(found):
            expected = threaded_run.serial[name]
            assert seen == expected, f"thread {index}, analysis {k} ({name}): {difference(seen, expected)}"


def test_training_thread_losses_bit_identical(threaded_run: ThreadedRun) -> None:
    """An MLP trained in a fifth thread while the analyses run gets exactly the losses it gets alone."""
    trainer_errors = [error for error in threaded_run.errors if error.startswith("trainer")]
    assert threaded_run.training_runs, "the training thread did not complete a run\n" + "\n".join(trainer_errors)
    for index, losses in enumerate(threaded_run.training_runs):
        assert losses == threaded_run.baseline_losses, f"training run {index} differs from the baseline"


def test_global_state_unchanged_after_threads(threaded_run: ThreadedRun) -> None:
    """After all threads joined, the process's global state is as before they started."""
    assert threaded_run.globals_after is not None
    assert_unchanged(threaded_run.globals_before, threaded_run.globals_after, "the process's global state")


def test_models_unchanged_after_threads(threaded_run: ThreadedRun) -> None:
    """The models analysed concurrently (shared by the threads) are as before."""
    for name, model in threaded_run.models.items():
        assert_unchanged(threaded_run.models_before[name], snapshot_model(model), f"model {name}")


def test_plain_forward_works_after_threads(threaded_run: ThreadedRun) -> None:
    """A plain torchvision ResNet-18 forward, run right after the threads joined, works."""
    assert threaded_run.plain_forward_error is None, threaded_run.plain_forward_error
