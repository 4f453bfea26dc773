"""The task an executor runs: one job in a fresh Python process, whatever happens to that process.

:func:`run_job` has a worker process made for the job — forked from a warm-start process that has
imported torch and the model library already (:mod:`torchscan.zoo.zygote`, started on first use, one
per library in the executor's process), or ``python -m torchscan.zoo.child``, a new interpreter, where
fork is unavailable or ``Settings.warm_start`` is off; either way nothing is inherited from the
executor's process but the environment, and it works from Dask's daemonic workers too — hands it the
job, and reads a row per input set. A worker that dies (a signal: segfault, abort,
the kernel's OOM killer), exceeds its memory limit or takes longer than ``Settings.time_limit`` for a
row is killed with its process group; that row is marked failed with the reason, and the job's other
input sets go on in a new process. The returned rows are the same whichever executor ran the task
(only the timing fields differ).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

from torchscan.zoo.analyse import failed_row, one_line
from torchscan.zoo.records import Job, Settings, ZooRow
from torchscan.zoo.zygote import EXIT_KEY, Zygote, available, environment, modules_for

__all__ = ["run_job"]

_POLL = 0.2
"""Seconds between looks at the cancel flag while waiting for a row."""


def _read_rows(stream: IO[bytes], rows: queue.Queue[ZooRow | None], status: list[int]) -> None:
    """Each JSON line of ``stream`` as a row on ``rows``; ``None`` at the end (the worker closed it, or a
    warm-start process wrote its exit status, appended to ``status``). A line cut short by the worker's
    death is skipped."""
    for line in stream:
        try:
            data = json.loads(line)
            if isinstance(data, dict) and set(data) == {EXIT_KEY}:
                status.append(int(data[EXIT_KEY]))
                break
            rows.put(ZooRow.from_dict(data))
        except (ValueError, KeyError, TypeError):
            continue
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


class _Worker:
    """One worker process serving one job: a fresh interpreter (``python -m torchscan.zoo.child``) or,
    where a warm-start process is available, a child forked from it (:mod:`torchscan.zoo.zygote`)."""

    def __init__(self, stderr: IO[bytes], zygote: Zygote | None) -> None:
        self.rows: queue.Queue[ZooRow | None] = queue.Queue()
        self._status: list[int] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None
        if zygote is None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "torchscan.zoo.child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=environment(),
                start_new_session=True,  # its own process group: killed whole on a timeout
            )
            assert self._process.stdin is not None and self._process.stdout is not None
            self._input: IO[bytes] = self._process.stdin
            self.output: IO[bytes] = self._process.stdout
            self.pid = self._process.pid
        else:
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            with theirs:
                self.pid = zygote.fork(theirs, stderr.fileno())
            self._channel = mine
            self._input = mine.makefile("wb")
            self.output = mine.makefile("rb")
        self.reader = threading.Thread(target=_read_rows, args=(self.output, self.rows, self._status), daemon=True)

    def send(self, payload: bytes) -> None:
        self._input.write(payload)
        self._input.flush()

    def returncode(self) -> int | None:
        """The worker's exit status once its output has ended (``None``: a warm-start process lost)."""
        if self._process is not None:
            return self._process.wait()
        self.reader.join()
        return self._status[0] if self._status else None

    def stop(self) -> None:
        """Kill the worker and everything it started (its process group), and release its pipes. A forked
        worker whose exit status has come is not signalled: its pid, reaped, may belong to another process."""
        reaped = self._process is None and bool(self._status)
        try:
            if not reaped:
                os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:  # gone already, or its group not made yet
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        except (PermissionError, AttributeError):  # no process groups (Windows)
            if self._process is not None:
                self._process.kill()
        if self._process is not None:
            self._process.wait()
        with contextlib.suppress(OSError):  # the worker closed its end first
            self._input.close()
        if self._channel is not None:
            with contextlib.suppress(OSError):
                self._channel.shutdown(socket.SHUT_RDWR)  # wakes the reader
        self.reader.join()
        self.output.close()
        if self._channel is not None:
            self._channel.close()


def _zygote_for(job: Job, settings: Settings) -> Zygote | None:
    """The warm-start process for ``job``'s libraries, started on first use (one per set of libraries in
    this process); ``None`` where warm starts are off or unavailable."""
    if not settings.warm_start or not available():
        return None
    modules = modules_for(job.target)
    with _ZYGOTES_LOCK:
        zygote = _ZYGOTES.get(modules)
        if zygote is None or not zygote.alive():
            zygote = _ZYGOTES[modules] = Zygote(modules)
        return zygote


_ZYGOTES: dict[tuple[str, ...], Zygote] = {}
"""This process's warm-start processes, by the libraries they imported: a pool of helper processes that
live as long as this process (each ends when this process does), never seen in a row."""
_ZYGOTES_LOCK = threading.Lock()


def _start(job: Job, settings: Settings, stderr: IO[bytes]) -> _Worker:
    """A worker for ``job``: forked warm where possible, a fresh interpreter otherwise (or if the warm
    start fails: its process is started again for the next job)."""
    zygote = _zygote_for(job, settings)
    if zygote is not None:
        try:
            return _Worker(stderr, zygote)
        except OSError:
            with _ZYGOTES_LOCK:
                if _ZYGOTES.get(modules_for(job.target)) is zygote:
                    del _ZYGOTES[modules_for(job.target)]
            zygote.close()
    return _Worker(stderr, None)


def _run_once(
    job: Job, settings: Settings, cancel: threading.Event | None, together: bool
) -> tuple[list[ZooRow], ZooRow | None]:
    """Rows of one worker process for ``job``; the failed row of the input set it died on, if it did.

    ``together``: the worker may analyse the input sets in one :func:`torchscan.sweep`, its rows all
    coming at its end; the first row's time limit is then one per input set."""
    rows: list[ZooRow] = []
    with tempfile.TemporaryFile() as stderr:
        worker = _start(job, settings, stderr)
        worker.reader.start()
        failure: tuple[str, str] | None = None

        def death() -> tuple[str, str]:
            code = worker.returncode()
            stderr.seek(0)
            text = stderr.read().decode("utf-8", "replace")
            if code is None:
                return "Crash", "worker lost: its warm-start process ended"
            return _death(code, text, settings)

        try:
            worker.send(pickle.dumps((job, settings, together)))
            while len(rows) < len(job.inputs):
                rows_due = len(job.inputs) if together and not rows else 1
                deadline = time.monotonic() + settings.time_limit * rows_due
                row: ZooRow | None = None
                while time.monotonic() < deadline:
                    if cancel is not None and cancel.is_set():
                        return rows, None
                    try:
                        row = worker.rows.get(timeout=min(_POLL, max(deadline - time.monotonic(), 0.0)))
                        break
                    except queue.Empty:
                        continue
                else:
                    failure = ("Timeout", f"timeout after {settings.time_limit * rows_due:g} s")
                    break
                if row is None:  # the worker is gone: its status says why
                    failure = death()
                    break
                rows.append(row)
        except (BrokenPipeError, ConnectionError):  # the worker died before it read the job
            failure = death()
        finally:
            worker.stop()
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
