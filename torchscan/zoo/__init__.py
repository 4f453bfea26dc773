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

from torchscan.zoo.driver import iter_rows, run
from torchscan.zoo.output import RowWriter, read_rows
from torchscan.zoo.records import Job, Settings, ZooInput, ZooRow
from torchscan.zoo.specs import jobs
from torchscan.zoo.table import render_html, render_markdown, summarise

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
