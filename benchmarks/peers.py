"""torchscan side by side with its peers: time and counts on the same models, in one process.

    python benchmarks/peers.py                          # default models (bert-base needs transformers)
    python benchmarks/peers.py resnet18 vit_b_16 --repeat 5

Tools (each skipped when not installed; none is a dependency of torchscan — ``pip install
torchscan[peers]`` brings them): torchinfo, fvcore, ptflops, thop, and PyTorch's own
``FlopCounterMode`` (always there). Each tool is called as its README shows, on its own copy of
the model (thop and ptflops attach counters to modules), at batch 1 and 3x224x224. The tools
and a plain ``torch.no_grad`` CPU forward run interleaved, ``--repeat`` rounds after a warm-up;
times are medians. MACs: torchscan's MACs, torchinfo's ``total_mult_adds``, fvcore's total
("flops" that count one fused multiply-add), ptflops' and thop's MACs, FlopCounterMode's FLOPs/2.

torchscan has three rows: ``torchscan`` is ``crawl_module`` as called, its totals read (the counts and the per-node
records; its report makes its rows, diagnostics and memory section on their first read, since the fiftieth and
forty-seventh sessions), ``torchscan + rows`` the same with the rows and diagnostics read too (the per-layer table
torchinfo gives), and ``torchscan + memory`` the whole report read (rows, diagnostics and the memory section:
inference peak, training estimates, backward cost, what no peer gives). The ``× torchscan`` column divides by the
first.

Beside the forward, one more reference row (not a tool): ``fx graph alone``, ``torch.fx.Tracer().trace``
of the model and nothing else (no ``GraphModule``, no generated code: the graph every fx-based analysis
starts from, before any copy, shape, count or memory), timed in the same rounds. Where fx cannot trace
the model (BERT's Python control flow on its inputs: Hugging Face's own fx tracer is gone from
transformers 5) the row is left out and an HTML comment says why.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torchvision
from speed import read_whole
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchscan import crawl_module

SHAPE = (3, 224, 224)
BERT = "bert-base"
"""A Hugging Face BERT-base built from its default config (random init), 128 token ids."""
BERT_TOKENS = 128
Tool = Callable[[nn.Module, torch.Tensor], tuple[int, int | None]]
"""(model, sample) -> (MACs, params or None); ``sample`` is an image batch or a batch of token ids."""


def _is_ids(sample: torch.Tensor) -> bool:
    return not sample.is_floating_point()


def _torchscan(model: nn.Module, sample: torch.Tensor, read: str = "") -> tuple[int, int | None]:
    """``read``: ``"rows"`` (the rows and diagnostics read too), ``"whole"`` (the memory section too), else totals."""
    shape, dtype = ((BERT_TOKENS,), torch.long) if _is_ids(sample) else (SHAPE, None)
    report = crawl_module(model, shape, dtype=dtype)
    if read == "rows" and not (isinstance(report.rows, tuple) and isinstance(report.diagnostics, tuple)):
        raise RuntimeError("the report has no rows")  # made on this first read
    if read == "whole":
        read_whole(report)
    return report.totals.macs, report.totals.params


def _torchscan_rows(model: nn.Module, sample: torch.Tensor) -> tuple[int, int | None]:
    return _torchscan(model, sample, read="rows")


def _torchscan_memory(model: nn.Module, sample: torch.Tensor) -> tuple[int, int | None]:
    return _torchscan(model, sample, read="whole")


def _torchinfo(model: nn.Module, sample: torch.Tensor) -> tuple[int, int | None]:
    from torchinfo import summary

    stats = summary(model, input_data=sample, verbose=0)
    return int(stats.total_mult_adds), int(stats.total_params)


def _fvcore(model: nn.Module, sample: torch.Tensor) -> tuple[int, int | None]:
    from fvcore.nn import FlopCountAnalysis, parameter_count

    analysis = FlopCountAnalysis(model, sample)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analysis.total()), int(parameter_count(model)[""])


def _ptflops(model: nn.Module, sample: torch.Tensor) -> tuple[int, int | None]:
    from ptflops import get_model_complexity_info

    if _is_ids(sample):
        macs, params = get_model_complexity_info(
            model,
            (BERT_TOKENS,),
            input_constructor=lambda _: {"input_ids": sample},
            as_strings=False,
            print_per_layer_stat=False,
            verbose=False,
        )
    else:
        macs, params = get_model_complexity_info(
            model, SHAPE, as_strings=False, print_per_layer_stat=False, verbose=False
        )
    return int(macs), int(params)


def _thop(model: nn.Module, sample: torch.Tensor) -> tuple[int, int | None]:
    from thop import profile

    macs, params = profile(model, inputs=(sample,), verbose=False)
    return int(macs), int(params)


def _fx_graph(model: nn.Module) -> torch.fx.Graph:
    """The fx graph of ``model`` and nothing more: the floor of an analysis built on an fx trace."""
    return torch.fx.Tracer().trace(model)


def _flop_counter(model: nn.Module, sample: torch.Tensor) -> tuple[int, int | None]:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(sample)
    return counter.get_total_flops() // 2, None


_FX = "fx graph alone"
"""The reference row of :func:`_fx_graph` (a floor, not a tool)."""

TOOLS: dict[str, tuple[str | None, Tool]] = {
    "torchscan": (None, _torchscan),
    "torchscan + rows": (None, _torchscan_rows),
    "torchscan + memory": (None, _torchscan_memory),
    "torchinfo": ("torchinfo", _torchinfo),
    "fvcore": ("fvcore", _fvcore),
    "ptflops": ("ptflops", _ptflops),
    "thop": ("thop", _thop),
    "FlopCounterMode": (None, _flop_counter),
}


def available() -> dict[str, Tool]:
    return {
        name: _guarded(tool)
        for name, (module, tool) in TOOLS.items()
        if module is None or importlib.util.find_spec(module)
    }


def _case(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The model (eval, random init) and its batch-1 sample."""
    if name == BERT:
        from transformers import BertConfig, BertModel

        config = BertConfig()
        return BertModel(config).eval(), torch.randint(0, config.vocab_size, (1, BERT_TOKENS))
    return torchvision.models.get_model(name, weights=None).eval(), torch.randn(1, *SHAPE)


def _guarded(tool: Tool) -> Tool:
    """``tool``, with a failure turned into no counts (the row then says so)."""

    def call(model: nn.Module, sample: torch.Tensor) -> tuple[int, int | None]:
        try:
            return tool(model, sample)
        except Exception as error:  # a peer's failure is a result, not a crash
            print(f"<!-- {tool.__name__.lstrip('_')} failed: {type(error).__name__}: {str(error)[:120]} -->")
            return -1, None

    return call


def compare(name: str, tools: dict[str, Tool], repeat: int) -> None:
    base, sample = _case(name)
    models = {tool: copy.deepcopy(base) for tool in tools}

    def forward() -> None:
        with torch.no_grad():
            base(sample)

    calls: dict[str, Callable[[], object]] = {"forward": forward}
    try:
        _fx_graph(base)
    except Exception as error:  # fx cannot trace it: no floor row
        print(f"<!-- {_FX} failed: {type(error).__name__}: {str(error)[:120]} -->")
    else:
        calls[_FX] = functools.partial(_fx_graph, base)
    calls.update({tool: (lambda tool=tool: tools[tool](models[tool], sample)) for tool in tools})
    counts = {tool: tools[tool](models[tool], sample) for tool in tools}  # warm-up and counts
    tools = {tool: call for tool, call in tools.items() if counts[tool][0] >= 0}
    forward()
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(repeat):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(values) for key, values in times.items()}
    ours = medians["torchscan"]
    for reference in ("forward", _FX):
        if reference in medians:
            seconds = medians[reference]
            print(
                f"| {name} | {reference} | {seconds:.4f} | {seconds / medians['forward']:.2f} | "
                f"{seconds / ours:.2f} | | |"
            )
    for tool in tools:
        macs, params = counts[tool]
        params_text = f"{params / 1e6:.2f}" if params is not None else ""
        print(
            f"| {name} | {tool} | {medians[tool]:.4f} | {medians[tool] / medians['forward']:.2f} | "
            f"{medians[tool] / ours:.2f} | {macs / 1e9:.3f} | {params_text} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "models",
        nargs="*",
        default=["resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16", "shufflenet_v2_x0_5", BERT],
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tools = available()
    missing = [name for name in TOOLS if name not in tools]
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"{torch.get_num_threads()} torch threads, load {os.getloadavg()[0]:.1f}; batch 1, 3x224x224 "
        f"({BERT}: {BERT_TOKENS} token ids); medians of {args.repeat} interleaved rounds"
        + (f"; not installed: {', '.join(missing)}" if missing else "")
        + "\n"
    )
    print("| Model | Tool | Time (s) | × forward | × torchscan | GMACs | Params (M) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.models:
        compare(name, tools, args.repeat)


if __name__ == "__main__":
    main()
