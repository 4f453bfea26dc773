"""Wall time of the ``torchscan`` command end to end, a fresh process per run, before and after a change.

    python benchmarks/cli.py                          # this checkout only
    python benchmarks/cli.py --before 8c7d177         # and a git revision, the two alternating
    python benchmarks/cli.py --repeat 5 --models vit_h_14 resnet50

Each case runs ``python -m torchscan MODEL --max-depth 1 -q`` (output to a pipe) and reports, over
``--repeat`` runs, the median wall time (the whole process: interpreter start, imports, model build,
analysis, render), the median CPU time of the child (user + sys, from ``os.wait4``: less sensitive to
other work on a shared machine than the wall), its peak resident memory and its status (a failed run
shows its last stderr line). A ``--before`` revision is exported with ``git archive`` to a temporary
folder and run from there (``PYTHONPATH``), alternating with this checkout run for run.

The ``floor`` row imports torch and ``torch._dynamo`` as the command's process does (the collector off, then
what they made frozen: ``torchscan/console.py``): every analysis imports both (``FakeTensorMode`` imports
``torch._dynamo``), so no command can be faster than it on the machine.
The load average is printed before and after: compare walls only from quiet runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("vit_h_14", "resnet50", "fasterrcnn_mobilenet_v3_large_320_fpn")
FLOOR = "floor"
TIMEOUT_S = 300


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mib: float
    status: int
    last_error: str


def run_once(argv: list[str], source: Path) -> Run:
    """One child process: wall clock around it, its CPU time and peak RSS from ``os.wait4``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=err)
        timer = threading.Timer(TIMEOUT_S, child.kill)  # a download that hangs offline
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        timer.cancel()
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if wall >= TIMEOUT_S:
        last = f"killed after {TIMEOUT_S} s; {last}"
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode, last)


def command(case: str) -> list[str]:
    if case == FLOOR:
        return [sys.executable, "-c", "import gc; gc.disable(); import torch, torch._dynamo; gc.freeze(); gc.enable()"]
    return [sys.executable, "-m", "torchscan", case, "--max-depth", "1", "-q"]


def export(revision: str, folder: Path) -> Path:
    """``revision`` of this repository as plain files under ``folder``."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", default=None, metavar="REV", help="a git revision to compare against")
    parser.add_argument("--after", default=None, metavar="REV", help="a git revision (default: this working tree)")
    args = parser.parse_args()

    temporary = tempfile.mkdtemp(prefix="torchscan_cli_")
    versions: dict[str, Path] = {}
    if args.before:
        versions[f"before ({args.before})"] = export(args.before, Path(temporary, "before"))
    versions[f"after ({args.after})" if args.after else "after"] = (
        export(args.after, Path(temporary, "after")) if args.after else ROOT
    )
    print(f"# {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"# load average at start: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print("| Command | Version | Wall (s, median) | CPU user+sys (s) | Peak RSS (MiB) | Status |")
    print("|---|---|---:|---:|---:|---|")
    try:
        for case in [FLOOR, *args.models]:
            runs: dict[str, list[Run]] = {version: [] for version in versions}
            for _ in range(args.repeat):
                for version, source in versions.items():  # alternating: drift hits both alike
                    runs[version].append(run_once(command(case), source))
            for version, results in runs.items():
                if case == FLOOR and version != list(versions)[-1]:
                    continue  # the same imports for every version
                failed = [run for run in results if run.status != 0]
                status = "ok" if not failed else f"exit {failed[0].status}: {failed[0].last_error[:80]}"
                name = (
                    "import torch, torch._dynamo (collector off, frozen)"
                    if case == FLOOR
                    else f"torchscan {case} --max-depth 1"
                )
                wall = statistics.median(run.wall for run in results)
                cpu = statistics.median(run.cpu for run in results)
                rss = max(run.rss_mib for run in results)
                print(f"| {name} | {version} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {status} |", flush=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    print(f"# load average at end: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
