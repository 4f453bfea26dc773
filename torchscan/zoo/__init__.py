"""Analyse many models, each in its own worker process, locally or on a cluster: one row per model and input.

``torchscan.zoo.run(["resnet*", "timm:convnext_*", "hf:gpt2"], output="results.csv", jobs=2)`` (the
command: ``torchscan zoo``). The modules, one job each:

- ``records``: the frozen records (:class:`Job`, :class:`Settings`, :class:`ZooRow`);
- ``specs``: spec files, patterns, default inputs, sizes and batch sizes -> jobs;
- ``huggingface``: ``hf:MODEL_TYPE`` architectures from their configuration;
- ``analyse``: one job analysed in the current process (what a worker runs);
- ``child``: the worker process's entry point (``python -m torchscan.zoo.child``);
- ``worker``: the executor's task: a worker process per job, its crash, hang or memory limit a failed row;
- ``driver``: the sweep over an executor, rows written as they come, resumed from the output;
- ``output``: the results file (CSV, JSON Lines, Parquet), written row by row and read back;
- ``progress``: the progress bar;
- ``table``: the results as Markdown or sortable HTML, and their summary;
- ``command``: the ``torchscan zoo`` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchscan.lazy import exports

if TYPE_CHECKING:
    from torchscan.zoo.driver import iter_rows, run
    from torchscan.zoo.output import RowWriter, read_rows
    from torchscan.zoo.records import Job, Settings, ZooInput, ZooRow
    from torchscan.zoo.specs import jobs
    from torchscan.zoo.table import render_html, render_markdown, summarise

_HOMES = {
    "Job": "torchscan.zoo.records",
    "RowWriter": "torchscan.zoo.output",
    "Settings": "torchscan.zoo.records",
    "ZooInput": "torchscan.zoo.records",
    "ZooRow": "torchscan.zoo.records",
    "iter_rows": "torchscan.zoo.driver",
    "jobs": "torchscan.zoo.specs",
    "read_rows": "torchscan.zoo.output",
    "render_html": "torchscan.zoo.table",
    "render_markdown": "torchscan.zoo.table",
    "run": "torchscan.zoo.driver",
    "summarise": "torchscan.zoo.table",
}
"""The module each public name is defined in: imported on first use (:mod:`torchscan.lazy`), so that a worker
process (``child``, ``zygote``) imports torch where it decides (:func:`torchscan.collector.frozen_after`)."""

__all__ = [
    "Job",
    "RowWriter",
    "Settings",
    "ZooInput",
    "ZooRow",
    "iter_rows",
    "jobs",
    "read_rows",
    "render_html",
    "render_markdown",
    "run",
    "summarise",
]


__getattr__, __dir__ = exports(__name__, _HOMES)
