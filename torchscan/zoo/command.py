"""``torchscan zoo SPEC... [options]``: the command over :func:`torchscan.zoo.run` (parsed by ``torchscan.cli``).

Rows go to ``-o FILE`` as they complete (a rerun skips what the file holds); the table of the sweep's
rows goes to ``--table FILE`` (``.md`` Markdown, ``.html`` a sortable page) or, with ``--table -`` or
when neither ``-o`` nor ``--table`` is given, to stdout as Markdown. The progress bar (on a terminal,
unless ``--quiet``) and the closing summary (rows, failures by reason, wall time) go to stderr. Without
a SPEC, ``-o FILE`` is only read: ``torchscan zoo -o results.csv --table results.html`` renders an
earlier sweep.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path

from torchscan.errors import TorchscanError
from torchscan.zoo.driver import run
from torchscan.zoo.output import output_format, read_rows
from torchscan.zoo.records import DEFAULT_MEMORY_LIMIT, DEFAULT_TIME_LIMIT
from torchscan.zoo.table import COLUMNS, parse_columns, render_html, render_markdown, summarise

__all__ = ["DESCRIPTION", "EXAMPLES", "add_arguments", "run_command"]

DESCRIPTION = (
    "Analyse many models, each in its own worker process with a time and a memory limit: one row per model "
    "and input (params, FLOPs, MACs, DMAs, memory, capture, error), written as they complete; a rerun resumes."
)

EXAMPLES = """\
examples:
  torchscan zoo 'resnet*' 'timm:convnext_*' -o results.csv --jobs 2
  torchscan zoo 'timm:*' -o timm.jsonl --jobs 8 --time-limit 300 --memory-limit 16GiB
  torchscan zoo resnet50 vit_b_16 --size 224 384 --batch-size 1 8 --table -
  torchscan zoo hf:gpt2 hf:bert hf:llama,num_hidden_layers=2 --size 128 512
  torchscan zoo @models.txt -o results.parquet --dask tcp://scheduler:8786
  torchscan zoo -o results.csv --table results.html        render an earlier sweep

A SPEC is a torchvision name, timm:NAME, hf:MODEL_TYPE[,key=value...], path/to/file.py:factory or
package.module:factory; torchvision names, timm: and hf: take patterns (quote them); @FILE reads one
SPEC per line, optionally followed by its inputs (model.py:make 3x32x32). Nothing is downloaded."""


def add_arguments(parser: argparse.ArgumentParser, size: Callable[[str], int]) -> None:
    """The command's options on ``parser``; ``size`` parses ``4GiB``-style sizes."""

    def limit(text: str) -> int | None:
        return None if text.lower() == "none" else size(text)

    parser.add_argument("specs", nargs="*", metavar="SPEC", help="models: names, patterns, @spec-files")
    parser.add_argument("--output", "-o", default=None, metavar="FILE", help="results file: .csv, .jsonl, .parquet")
    parser.add_argument("--table", default=None, metavar="FILE", help="the table: FILE.md, FILE.html, - for stdout")
    parser.add_argument(
        "--columns",
        default=None,
        metavar="LIST",
        help=f"table columns, comma-separated: {', '.join(COLUMNS)} (default: model,input,params,flops,macs,dmas,"
        "complete,time)",
    )
    parser.add_argument(
        "--input",
        action="append",
        default=None,
        metavar="INPUT",
        help="an input for every model, without the batch dim, [keyword=]DIMS[:dtype]: 3x299x299, "
        "input_ids=128:int64; repeat it for several inputs (default: each model's own)",
    )
    parser.add_argument(
        "--size", type=int, nargs="+", default=None, metavar="N", help="image sizes / sequence lengths to sweep"
    )
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1], metavar="N", help="batch sizes (default 1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="worker processes at once (default 1)")
    where.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run on a dask.distributed scheduler (pip install torchscan[cluster])",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help=f"per row; the worker is killed after it (default {DEFAULT_TIME_LIMIT:g})",
    )
    parser.add_argument(
        "--memory-limit",
        type=limit,
        default=DEFAULT_MEMORY_LIMIT,
        metavar="SIZE",
        help="address space a worker may add after importing torch, e.g. 16GiB, or none (default 8GiB)",
    )
    real = parser.add_mutually_exclusive_group()
    real.add_argument("--no-real-forward", action="store_true", help="never fall back to a real forward")
    real.add_argument(
        "--real-forward-limit", type=size, default=None, metavar="SIZE", help="largest real forward allowed, e.g. 4GiB"
    )
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="each worker a new interpreter, not forked from one that imported torch (slower by ~4 s a model)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar (shown only on a terminal)")
    parser.add_argument("--traceback", action="store_true", help="on an error, print the full traceback")


@contextlib.contextmanager
def _executor(address: str | None) -> Iterator[Executor | None]:
    """A Dask client's executor for ``address`` (closed after), or ``None`` for the local pool."""
    if address is None:
        yield None
        return
    try:
        from dask.distributed import Client
    except ImportError as error:
        raise TorchscanError("--dask needs dask.distributed: pip install 'torchscan[cluster]'") from error
    try:
        client = Client(address)
    except OSError as error:
        raise TorchscanError(f"--dask {address}: cannot reach the scheduler ({error})") from error
    try:
        yield client.get_executor()
    finally:
        client.close()


def _table_format(table: str | None) -> str | None:
    if table is None or table == "-":
        return None if table is None else "markdown"
    suffix = Path(table).suffix.lower()
    if suffix not in (".md", ".html", ".htm"):
        raise TorchscanError(f"--table {table}: give a .md or .html file, or - for stdout")
    if not Path(table).parent.is_dir():
        raise TorchscanError(f"--table {table}: folder {Path(table).parent} does not exist")
    return "markdown" if suffix == ".md" else "html"


def run_command(args: argparse.Namespace) -> int:
    """The command once parsed: options checked before any work, the sweep, the table, the summary."""
    start = time.perf_counter()
    columns = parse_columns(args.columns)
    table_format = _table_format(args.table)
    if args.output is not None:
        output_format(args.output)
    if args.jobs < 1:
        raise TorchscanError("--jobs must be 1 or more")
    if not args.specs:
        if args.output is None or not Path(args.output).is_file():
            raise TorchscanError("give a SPEC to analyse, or -o FILE of an earlier sweep to render")
        rows = read_rows(args.output)
    else:
        with _executor(args.dask) as executor:
            rows = run(
                args.specs,
                inputs=args.input,
                sizes=args.size,
                batch_sizes=args.batch_size,
                output=args.output,
                executor=executor,
                jobs=args.jobs,
                time_limit=args.time_limit,
                memory_limit=args.memory_limit,
                real_forward=not args.no_real_forward,
                real_forward_limit=args.real_forward_limit,
                warm_start=not args.cold_start,
                progress=sys.stderr if not args.quiet and sys.stderr.isatty() else None,
            )
    if table_format == "html":
        Path(args.table).write_text(render_html(rows, columns), encoding="utf-8")
    elif args.table not in (None, "-"):
        Path(args.table).write_text(render_markdown(rows, columns), encoding="utf-8")
    elif args.table == "-" or args.output is None:
        sys.stdout.write(render_markdown(rows, columns))
    print(f"torchscan zoo: {summarise(rows)} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0
