"""One sweep shared by the zoo's tests: a dozen small models of ``tests/zoo/models.py`` and four that fail
(segfault, hang, memory, a factory that raises), run once per session."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from torchscan import zoo

MODELS = Path(__file__).with_name("models.py")

TIME_LIMIT = 20.0
"""Seconds per row: the hanging model's row takes this long; every other row takes a few seconds."""

MEMORY_LIMIT = 2**30

GOOD: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp": ("16", {"input_shape": (16,)}),
    "cnn": ("3x32x32", {"input_shape": (3, 32, 32)}),
    "residual": ("3x16x16", {"input_shape": (3, 16, 16)}),
    "depthwise": ("3x16x16", {"input_shape": (3, 16, 16)}),
    "tokens": ("12:int64", {"input_shape": (12,), "dtype": torch.long}),
    "encoder": ("10x16", {"input_shape": (10, 16)}),
    "recurrent": ("10x8", {"input_shape": (10, 8)}),
    "value_branch": ("8", {"input_shape": (8,)}),
    "unknown": ("8", {"input_shape": (8,)}),
    "two_inputs": ("3x16x16 7:int64", {"input_shape": [(3, 16, 16), (7,)], "dtype": (torch.float32, torch.long)}),
    "upsample": ("3x8x8", {"input_shape": (3, 8, 8)}),
    "halves": ("3x16x16:float16", {"input_shape": (3, 16, 16), "dtype": torch.float16}),
}
"""Model -> its inputs on the spec line, and the same inputs as ``crawl_module`` takes them."""

BAD: dict[str, tuple[str, str]] = {
    "segfault": ("Crash", "worker killed by SIGSEGV (Segmentation fault)"),
    "hang": ("Timeout", f"timeout after {TIME_LIMIT:g} s"),
    "hog": ("MemoryLimit", "memory limit (1.00 GiB) reached"),
    "raises": ("TorchscanError", "raised ValueError: this factory refuses"),
}
"""Model -> the error type and the start of the message of its failed row."""


def spec(name: str) -> str:
    return f"{MODELS}:{name}"


def lines(names: list[str]) -> list[str]:
    """Spec lines for ``names``: the spec and, for the good ones, their inputs."""
    return [f"{spec(name)} {GOOD[name][0]}" if name in GOOD else f"{spec(name)} 3x8x8" for name in names]


@dataclass(frozen=True)
class Sweep:
    rows: list[zoo.ZooRow]
    output: Path
    seconds: float


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    output = tmp_path_factory.mktemp("zoo") / "sweep.csv"
    start = time.perf_counter()
    rows = zoo.run(lines([*GOOD, *BAD]), output=output, jobs=2, time_limit=TIME_LIMIT, memory_limit=MEMORY_LIMIT)
    return Sweep(rows, output, time.perf_counter() - start)
