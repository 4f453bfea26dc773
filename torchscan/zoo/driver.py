"""The sweep: jobs planned, the ones the output already holds skipped, the rest run by an executor, each
row written as it arrives.

Any :class:`concurrent.futures.Executor` runs the jobs: the task is :func:`torchscan.zoo.worker.run_job`
(a plain function of frozen records, so it pickles), which starts the worker process itself. The default
is a thread pool of ``jobs`` threads in this process, each watching one worker process at a time: the
work, and the isolation, are in those processes. ``client.get_executor()`` of a ``dask.distributed``
client runs the same tasks on a cluster.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from typing import TextIO

from torchscan.zoo.analyse import failed_row
from torchscan.zoo.output import RowWriter, read_rows
from torchscan.zoo.progress import Progress
from torchscan.zoo.records import DEFAULT_MEMORY_LIMIT, DEFAULT_TIME_LIMIT, Job, Settings, ZooInput, ZooRow
from torchscan.zoo.specs import jobs as plan_jobs
from torchscan.zoo.worker import run_job

__all__ = ["iter_rows", "run"]


def _pending(plan: Sequence[Job], done: set[tuple[str, str]]) -> list[Job]:
    """The jobs of ``plan`` with the input sets whose keys are in ``done`` left out (empty jobs dropped)."""
    left = (
        job.only(tuple(s for s, key in zip(job.inputs, job.row_keys(), strict=True) if key not in done)) for job in plan
    )
    return [job for job in left if job.inputs]


def _sweep(
    plan: Sequence[Job],
    settings: Settings,
    writer: RowWriter | None,
    executor: Executor | None,
    jobs: int,
    progress: TextIO | None,
) -> Iterator[ZooRow]:
    """Run the jobs of ``plan`` not in ``writer``'s file; yield (and write) each row as it completes."""
    done = writer.keys if writer is not None else set()
    todo = _pending(plan, done)
    resumed = sum(len(job.inputs) for job in plan) - sum(len(job.inputs) for job in todo)
    bar = Progress(progress, total=sum(len(job.inputs) for job in todo), resumed=resumed)
    pool = executor if executor is not None else ThreadPoolExecutor(jobs, thread_name_prefix="torchscan-zoo")
    cancel = threading.Event() if isinstance(pool, ThreadPoolExecutor) else None  # only threads here can see it
    futures: dict[Future[tuple[ZooRow, ...]], Job] = {}
    try:
        for job in todo:
            extra = (cancel,) if cancel is not None else ()
            futures[pool.submit(run_job, job, settings, *extra)] = job
        for future in as_completed(futures):
            job = futures[future]
            try:
                rows = future.result()
            except Exception as error:  # the executor lost the task (a worker machine gone): its rows failed
                rows = tuple(failed_row(job.spec, inputs, type(error).__name__, str(error)) for inputs in job.inputs)
            for row in rows:
                if writer is not None:
                    writer.write(row)
                bar.update(row)
                yield row
    finally:
        if cancel is not None:
            cancel.set()
        for future in futures:
            future.cancel()
        if executor is None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _iter(
    plan: Sequence[Job],
    settings: Settings,
    output: str | os.PathLike[str] | None,
    executor: Executor | None,
    jobs: int,
    progress: TextIO | None,
) -> Iterator[ZooRow]:
    writer = RowWriter(output) if output is not None else None
    try:
        yield from _sweep(plan, settings, writer, executor, jobs, progress)
    finally:
        if writer is not None:
            writer.close()


def iter_rows(
    specs: Iterable[str],
    *,
    inputs: Sequence[str | ZooInput] | None = None,
    sizes: Sequence[int] | None = None,
    batch_sizes: Sequence[int] = (1,),
    output: str | os.PathLike[str] | None = None,
    executor: Executor | None = None,
    jobs: int = 1,
    time_limit: float = DEFAULT_TIME_LIMIT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    real_forward: bool = True,
    real_forward_limit: int | None = None,
    warm_start: bool = True,
    progress: TextIO | None = None,
) -> Iterator[ZooRow]:
    """Each new row of the sweep as it completes (rows ``output`` already holds are skipped, not yielded).

    Arguments as for :func:`run`; the specs are expanded at once (a bad spec raises here). Closing the
    iterator early (``break``) stops the sweep: no further row is written, queued jobs are cancelled and,
    with the default executor, running workers killed.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, got {jobs}")
    plan = plan_jobs(specs, inputs=inputs, sizes=sizes, batch_sizes=batch_sizes)
    settings = Settings(time_limit, memory_limit, real_forward, real_forward_limit, warm_start)
    return _iter(plan, settings, output, executor, jobs, progress)


def run(
    specs: Iterable[str],
    *,
    inputs: Sequence[str | ZooInput] | None = None,
    sizes: Sequence[int] | None = None,
    batch_sizes: Sequence[int] = (1,),
    output: str | os.PathLike[str] | None = None,
    executor: Executor | None = None,
    jobs: int = 1,
    time_limit: float = DEFAULT_TIME_LIMIT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    real_forward: bool = True,
    real_forward_limit: int | None = None,
    warm_start: bool = True,
    progress: TextIO | None = None,
) -> list[ZooRow]:
    """Analyse every model ``specs`` name at every input set, each in a worker process; one row each.

    ``specs``: torchvision names, ``timm:NAME``, ``hf:MODEL_TYPE``, ``file.py:factory``,
    ``package.module:factory``, patterns of the first three (``timm:resnet*``), ``@file.txt`` spec
    files, each optionally followed by its inputs (:mod:`torchscan.zoo.specs`). ``inputs`` replaces
    every model's default input (``"3x299x299"``, ``"input_ids=128:int64"``; no batch dim),
    ``sizes`` sweeps image sizes / sequence lengths, ``batch_sizes`` batch sizes.

    ``output`` (``.csv``, ``.jsonl``, ``.parquet``) gets each row as it completes; rows it already
    holds are not run again (a stopped sweep resumes). ``executor`` runs the jobs (default: ``jobs``
    threads here, each watching a worker process); ``time_limit`` (seconds per row) and
    ``memory_limit`` (bytes of address space a worker may add after importing torch; ``None``: no
    limit) bound each worker. ``warm_start``: workers forked from a process that imported torch and the
    model library once (:mod:`torchscan.zoo.zygote`; off: a new interpreter each, ~4 s slower a model).
    ``progress``: a stream for the progress bar (``sys.stderr``).

    Returns every row of the sweep, those the output already held included, in the order of the
    specs and their input sets.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, got {jobs}")
    plan = plan_jobs(specs, inputs=inputs, sizes=sizes, batch_sizes=batch_sizes)
    settings = Settings(time_limit, memory_limit, real_forward, real_forward_limit, warm_start)
    rows = {row.key: row for row in _iter(plan, settings, output, executor, jobs, progress)}
    if output is not None:
        rows = {row.key: row for row in read_rows(output)} | rows
    return [rows[key] for job in plan for key in job.row_keys() if key in rows]
