"""The executor's task: a worker that dies fails its row only, and a new worker takes the job's other inputs."""

from __future__ import annotations

import signal
import threading
import time

from tests.zoo.conftest import spec
from torchscan.zoo.records import Settings
from torchscan.zoo.specs import jobs
from torchscan.zoo.worker import _death, run_job


def test_a_crash_fails_its_row_and_the_next_input_goes_on_in_a_new_worker() -> None:
    job = jobs([spec("crash_at_16")], inputs=["3x8x8"], sizes=[8, 16, 24])[0]
    rows = run_job(job, Settings(time_limit=60))
    assert [row.input for row in rows] == ["1x3x8x8", "1x3x16x16", "1x3x24x24"]
    assert [row.status for row in rows] == ["ok", "failed", "ok"]
    assert rows[1].error_type == "Crash" and "SIGSEGV" in (rows[1].error or "")
    assert rows[0].params == rows[2].params == 3 * 4 * 9 + 4


def test_a_worker_that_exits_is_a_crash_with_its_status() -> None:
    job = jobs([spec("exits")])[0]
    (row,) = run_job(job, Settings(time_limit=60))
    assert (row.status, row.error_type) == ("failed", "Crash")
    assert row.error == "worker exited with status 7"


def test_cancel_stops_at_once_with_the_rows_so_far() -> None:
    job = jobs([spec("hang")], inputs=["3x8x8"])[0]
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    start = time.monotonic()
    assert run_job(job, Settings(time_limit=600), cancel) == ()
    assert time.monotonic() - start < 60  # not the time limit


def test_deaths_are_named() -> None:
    settings = Settings(memory_limit=2**30)
    assert _death(-signal.SIGABRT, "terminate called after throwing an instance of 'std::bad_alloc'", settings)[0] == (
        "MemoryLimit"
    )
    kind, message = _death(-signal.SIGKILL, "", settings)
    assert kind == "Crash" and "SIGKILL" in message and "out-of-memory" in message
    stack = "Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n"
    stack += '  File "m.py", line 3 in f\n'
    assert _death(-signal.SIGSEGV, stack, settings) == (
        "Crash",
        'worker killed by SIGSEGV (Segmentation fault) at File "m.py", line 3 in f',
    )
    assert _death(2, "Traceback…\nValueError: no\n", settings) == (
        "Crash",
        "worker exited with status 2: ValueError: no",
    )
