"""The task an executor runs: one job in a fresh Python process, whatever happens to that process.

:func:`run_job` starts ``python -m torchscan.zoo.child`` (a new interpreter: nothing inherited from
the executor's process but the environment; a subprocess, so it works from Dask's daemonic workers
too), hands it the job, and reads a row per input set. A worker that dies (a signal: segfault, abort,
the kernel's OOM killer), exceeds its memory limit or takes longer than ``Settings.time_limit`` for a
row is killed with its process group; that row is marked failed with the reason, and the job's other
input sets go on in a new process. The returned rows are the same whichever executor ran the task
(only the timing fields differ).
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from torchscan.zoo.analyse import failed_row, one_line
from torchscan.zoo.records import Job, Settings, ZooRow

__all__ = ["run_job"]

_POLL = 0.2
"""Seconds between looks at the cancel flag while waiting for a row."""

_SOURCE = str(Path(__file__).resolve().parents[2])
"""The folder holding this torchscan package: the worker imports the same one."""


def _environment() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(part for part in (_SOURCE, path) if part)}


def _read_rows(stream: IO[bytes], rows: queue.Queue[ZooRow | None]) -> None:
    """Each JSON line of ``stream`` as a row on ``rows``; ``None`` at the end (the worker closed it)."""
    for line in stream:
        try:
            rows.put(ZooRow.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):  # a line cut short by the worker's death
            break
    rows.put(None)


def _stack_line(stderr: str) -> str:
    """The innermost frame of a ``faulthandler`` stack in ``stderr`` (``File "x.py", line 3 in forward``)."""
    lines = stderr.splitlines()
    for index, line in enumerate(lines):  # the crashing thread's stack is the one marked "Current thread"
        if line.startswith("Current thread") and "most recent call first" in line and index + 1 < len(lines):
            return lines[index + 1].strip()
    return ""


def _death(returncode: int, stderr: str, settings: Settings) -> tuple[str, str]:
    """``(error_type, message)`` of a worker that ended without its row."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if settings.memory_limit is not None and "bad_alloc" in stderr:
            limit = f"{settings.memory_limit / 2**30:.2f} GiB"
            return "MemoryLimit", f"memory limit ({limit}) reached: the worker aborted on std::bad_alloc"
        description = signal.strsignal(number) or name
        message = f"worker killed by {name} ({description})"
        if number == signal.SIGKILL:
            message += ": by the system (its out-of-memory killer?)"
        where = _stack_line(stderr)
        return "Crash", message + (f" at {where}" if where else "")
    tail = [line for line in stderr.splitlines() if line.strip()][-1:]
    return "Crash", f"worker exited with status {returncode}" + (f": {tail[0]}" if tail else "")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the worker and everything it started (its process group), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):  # gone already, or no process groups (Windows)
        process.kill()
    process.wait()


def _run_once(
    job: Job, settings: Settings, cancel: threading.Event | None, together: bool
) -> tuple[list[ZooRow], ZooRow | None]:
    """Rows of one worker process for ``job``; the failed row of the input set it died on, if it did.

    ``together``: the worker may analyse the input sets in one :func:`torchscan.sweep`, its rows all
    coming at its end; the first row's time limit is then one per input set."""
    rows: list[ZooRow] = []
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "torchscan.zoo.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_environment(),
            start_new_session=True,  # its own process group: killed whole on a timeout
        )
        assert process.stdin is not None and process.stdout is not None
        received: queue.Queue[ZooRow | None] = queue.Queue()
        reader = threading.Thread(target=_read_rows, args=(process.stdout, received), daemon=True)
        reader.start()
        failure: tuple[str, str] | None = None
        try:
            pickle.dump((job, settings, together), process.stdin)
            process.stdin.flush()
            while len(rows) < len(job.inputs):
                rows_due = len(job.inputs) if together and not rows else 1
                deadline = time.monotonic() + settings.time_limit * rows_due
                row: ZooRow | None = None
                while time.monotonic() < deadline:
                    if cancel is not None and cancel.is_set():
                        return rows, None
                    try:
                        row = received.get(timeout=min(_POLL, max(deadline - time.monotonic(), 0.0)))
                        break
                    except queue.Empty:
                        continue
                else:
                    failure = ("Timeout", f"timeout after {settings.time_limit * rows_due:g} s")
                    break
                if row is None:  # the worker is gone: its status says why
                    process.wait()
                    stderr.seek(0)
                    failure = _death(process.returncode, stderr.read().decode("utf-8", "replace"), settings)
                    break
                rows.append(row)
        except BrokenPipeError:  # the worker died before it read the job
            process.wait()
            stderr.seek(0)
            failure = _death(process.returncode, stderr.read().decode("utf-8", "replace"), settings)
        finally:
            _stop(process)
            process.stdin.close()
            reader.join()
            process.stdout.close()
    if failure is None:
        return rows, None
    return rows, failed_row(job.spec, job.inputs[len(rows)], failure[0], one_line(failure[1]))


def run_job(job: Job, settings: Settings, cancel: threading.Event | None = None) -> tuple[ZooRow, ...]:
    """The rows of ``job``, one per input set in order, each analysed in a worker process under
    ``settings``' limits; a worker's death fails its row and a new worker takes the rest. Several input
    sets go to one worker together (one :func:`torchscan.sweep`); if that worker dies before its first
    row, they are analysed again one by one, so that only the input set that kills a worker fails.
    ``cancel`` (for an executor in this process) stops early: the rows so far are returned."""
    rows: list[ZooRow] = []
    remaining = job
    together = len(job.inputs) > 1
    while remaining.inputs:
        done, failed = _run_once(remaining, settings, cancel, together)
        rows += done
        if failed is None:  # every input set done, or cancelled
            break
        if together and not done:  # the shared sweep died: find the input set that kills a worker
            together = False
            continue
        together = False
        rows.append(failed)
        remaining = remaining.only(remaining.inputs[len(done) + 1 :])
    return tuple(rows)
