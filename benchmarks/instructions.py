"""Instructions per analysis, counted by valgrind: a before/after measure that machine load does not move.

    python benchmarks/instructions.py mobilenet_v3_large shufflenet_v2_x0_5            # this checkout
    python benchmarks/instructions.py --rev 29c5e38 --rev . mobilenet_v3_large timm:levit_128s
    python benchmarks/instructions.py --rev . hf:gpt2 hf:bert                           # Hugging Face, on meta

On a shared 2-core machine the time of one analysis drifts by 10–50% between runs (issue 13's rounds), so
a change worth a few percent cannot be told from noise by clocks. The number of instructions a process
executes does not drift: each model is analysed in two processes run under ``valgrind --tool=cachegrind
--cache-sim=no`` (which counts every instruction executed), one that builds the model and analyses it once
(the warm-up) and one that then analyses it ``--repeat`` more times; the difference divided by
``--repeat`` is the instructions of one analysis, imports and model building cancelled out. Both run with
``PYTHONHASHSEED=0`` and one torch thread, so a rerun gives the same count to within a few parts in ten
thousand. Instructions are not time (memory stalls and branch misses are not counted), but for the
interpreter-bound work an analysis is they follow it closely, and they compare two checkouts exactly.

Each ``--rev`` is a git revision (checked out in a temporary worktree, removed after) or ``.`` (this
working tree, uncommitted changes included); with none, this working tree alone. Under valgrind a process
runs ~50× slower: importing torch takes about two minutes, so each model costs a few minutes per revision
(``--jobs`` processes run at once, default: the CPU count). Skipped with a message where valgrind is not
installed (it is not a dependency). Each report is read whole: its rows, diagnostics and memory section (a report
makes them on their first read since the fiftieth and forty-seventh sessions; ``crawl_module`` did before), so
revisions on either side compare the same work; ``--unread`` leaves them unread (what a reader of the totals alone
pays, at a revision that defers them).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _child(name: str, repeat: int, read: bool = True) -> None:
    """Build ``name`` (random init), analyse it once, then ``repeat`` more times (run under valgrind); ``read``:
    each report read whole (its rows, diagnostics and memory section made on their first read)."""
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    from torchscan import crawl_module

    dtype = None
    if name.startswith("timm:"):
        import timm

        model = timm.create_model(name[5:], pretrained=False).eval()
        shape = tuple(model.pretrained_cfg["input_size"])
    elif name.startswith("hf:"):  # a Hugging Face model of its default config, on meta, 128 tokens
        import transformers

        model_cls, config_cls = _HF[name[3:]]
        with torch.device("meta"):
            model = getattr(transformers, model_cls)(getattr(transformers, config_cls)()).eval()
        shape, dtype = (128,), torch.long
    else:
        import torchvision

        model = torchvision.models.get_model(name, weights=None).eval()
        video = name in torchvision.models.list_models(module=torchvision.models.video)
        shape = (3, 16, 224, 224) if video else (3, 224, 224)  # a video classifier: 16 frames
    for _ in range(repeat + 1):  # the warm-up, then the counted ones
        report = crawl_module(model, shape, dtype=dtype)
        if read:
            report.rows, report.diagnostics, report.memory  # noqa: B018 (made on their first read since the fiftieth and
            # forty-seventh sessions; by crawl_module before)


_HF = {"gpt2": ("GPT2Model", "GPT2Config"), "bert": ("BertModel", "BertConfig"), "llama": ("LlamaModel", "LlamaConfig")}
"""``hf:NAME`` models (built from their default configs: GPT-2 small, BERT-base, Llama-2-7B shaped)."""


def _count(checkout: Path, name: str, repeat: int, read: bool = True) -> int:
    """Instructions executed by one child process (``repeat`` analyses after the warm-up)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        name,
        str(repeat),
        *(() if read else ("--unread",)),
    ]
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{name} at {checkout}: valgrind run failed (rc {done.returncode}):\n{tail}")
    return int(found.group(1).replace(",", ""))


def _checkouts(revisions: list[str], scratch: Path) -> list[tuple[str, Path]]:
    """(label, path) per revision: ``.`` is this working tree, any other a new detached worktree."""
    made = []
    for revision in revisions:
        if revision == ".":
            made.append((".", ROOT))
            continue
        path = scratch / re.sub(r"[^\w.-]", "_", revision)
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-f", str(path), revision],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        made.append((revision, path))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["mobilenet_v3_large"])
    parser.add_argument("--rev", action="append", default=[], help="a git revision, or . (this working tree)")
    parser.add_argument("--repeat", type=int, default=5, help="analyses counted after the warm-up (default 5)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--unread",
        action="store_true",
        help="leave each report's rows, diagnostics and memory section unread (made on their first read)",
    )
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), read=not args.unread)
        return
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count (apt install valgrind)")
        return
    with tempfile.TemporaryDirectory(prefix="torchscan-instructions-") as scratch:
        checkouts = _checkouts(args.rev or ["."], Path(scratch))
        try:
            runs = [
                (label, path, name, repeat)
                for label, path in checkouts
                for name in args.models
                for repeat in (0, args.repeat)
            ]
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                counts = list(pool.map(lambda run: _count(run[1], run[2], run[3], not args.unread), runs))
        finally:
            for label, path in checkouts:
                if label != ".":
                    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)
    found = {(run[0], run[2], run[3]): count for run, count in zip(runs, counts, strict=True)}
    read = "left unread" if args.unread else "read"
    print(
        f"valgrind cachegrind: {args.repeat} analyses after a warm-up, one torch thread, rows, diagnostics and "
        f"memory sections {read}\n"
    )
    print("| Model | Revision | Instructions per analysis (M) | × first revision |")
    print("|---|---|---:|---:|")
    for name in args.models:
        first = None
        for label, _ in checkouts:
            per = (found[(label, name, args.repeat)] - found[(label, name, 0)]) / args.repeat
            first = per if first is None else first
            print(f"| {name} | {label} | {per / 1e6:.1f} | {per / first:.3f} |", flush=True)


if __name__ == "__main__":
    main()
