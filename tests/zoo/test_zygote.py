"""Warm starts: workers forked from a process that imported torch give the rows of new interpreters,
one model's changes to its process never reach the next, and a lost warm-start process is replaced."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest

from tests.zoo.conftest import spec
from torchscan.zoo import worker, zygote
from torchscan.zoo.records import TIMING_FIELDS, Settings, ZooRow
from torchscan.zoo.specs import jobs
from torchscan.zoo.worker import run_job

pytestmark = pytest.mark.skipif(not zygote.available(), reason="warm starts need fork and descriptor passing")


def _untimed(row: ZooRow) -> dict[str, object]:
    return {key: value for key, value in dataclasses.asdict(row).items() if key not in TIMING_FIELDS}


@pytest.mark.parametrize(
    ("name", "inputs", "sizes"),
    [("cnn", "3x32x32", None), ("crash_at_16", "3x8x8", [8, 16, 24]), ("exits", None, None)],
)
def test_warm_and_cold_workers_give_the_same_rows(name: str, inputs: str | None, sizes: list[int] | None) -> None:
    job = jobs([spec(name)], inputs=[inputs] if inputs else None, sizes=sizes)[0]
    warm = run_job(job, Settings(time_limit=60))
    cold = run_job(job, Settings(time_limit=60, warm_start=False))
    assert [_untimed(row) for row in warm] == [_untimed(row) for row in cold]
    assert len(warm) == len(job.inputs)


def test_one_models_process_changes_never_reach_the_next() -> None:
    settings = Settings(time_limit=60)
    (fresh,) = run_job(jobs([spec("probe")], inputs=["4"])[0], settings)
    (leaked,) = run_job(jobs([spec("leaky")], inputs=["4:float64"])[0], settings)
    (after,) = run_job(jobs([spec("probe")], inputs=["4"])[0], settings)
    assert leaked.model_bytes == 2 * fresh.model_bytes == 2 * (16 + 4) * 4  # float64 in its own process only
    assert _untimed(after) == _untimed(fresh)


def test_a_warm_start_process_that_ended_is_replaced() -> None:
    job = jobs([spec("probe")], inputs=["4"])[0]
    settings = Settings(time_limit=60)
    (before,) = run_job(job, settings)
    first = worker._zygote_for(job, settings)
    assert first is not None and first.alive()
    os.killpg(first._process.pid, signal.SIGKILL)
    first._process.wait()
    (after,) = run_job(job, settings)
    assert _untimed(after) == _untimed(before)
    second = worker._zygote_for(job, settings)
    assert second is not first and second is not None and second.alive()


def test_each_model_library_gets_its_own_warm_start_process() -> None:
    assert zygote.modules_for("resnet50") == ("torchvision",)
    assert zygote.modules_for("timm:resnet50") == ("timm",)
    assert zygote.modules_for("hf:gpt2") == ("transformers",)
    assert zygote.modules_for("/models/nets.py:build") == ()
    assert zygote.modules_for("package.module:factory") == ()


def test_the_worker_processes_import_torch_where_they_freeze_it() -> None:
    """``python -m torchscan.zoo.child`` and ``.zygote`` import their modules before torch: the package's names are
    imported on first use, so that each process imports torch inside :func:`torchscan.collector.frozen_after`."""
    import subprocess
    import sys

    script = "import sys, torchscan.zoo.child, torchscan.zoo.zygote; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False"]
