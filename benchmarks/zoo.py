"""The zoo at scale: every torchvision model plus timm's (all, or every k-th), each in its own worker.

    python benchmarks/zoo.py specs --timm-every 4 > zoo_specs.txt      # the spec list, one per line
    nice -n 19 torchscan zoo @zoo_specs.txt --jobs 2 --real-forward-limit 4GiB -o zoo.csv
    python benchmarks/zoo.py summary zoo.csv                           # counts, failures by reason
    nice -n 19 python benchmarks/zoo.py speedup --count 40 --timm-every 4   # 1 worker, then 2

The timm sample is deterministic: ``timm.list_models()`` (sorted by name), every k-th from the first.
The speed-up runs the same ``--count`` models (evenly spaced over the spec list) with ``jobs=1``, then
``jobs=2``, no results file, and prints both wall times (``--cold``: first ``jobs=1`` with a new
interpreter per model, the time warm starts save).
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import time
from collections.abc import Sequence

import torch

from torchscan import zoo


def spec_list(timm_every: int) -> list[str]:
    """Every torchvision model, then every ``timm_every``-th timm model (0: none)."""
    import torchvision

    specs = list(torchvision.models.list_models())
    if timm_every:
        import timm

        specs += ["timm:" + name for name in timm.list_models()[::timm_every]]
    return specs


def summary(path: str) -> str:
    rows = zoo.read_rows(path)
    lines = [zoo.summarise(rows)]
    sources = collections.Counter("timm" if row.spec.startswith("timm:") else "torchvision" for row in rows)
    lines.append("models: " + ", ".join(f"{source} {count}" for source, count in sources.items()))
    for source in sources:
        group = [row for row in rows if ("timm" if row.spec.startswith("timm:") else "torchvision") == source]
        ok = sum(row.ok for row in group)
        complete = sum(bool(row.complete) for row in group)
        lines.append(f"  {source}: {ok}/{len(group)} ok, {complete} complete")
    captures = collections.Counter(row.capture for row in rows if row.ok)
    lines.append("captures: " + ", ".join(f"{name} {count}" for name, count in captures.most_common()))
    reasons: dict[str, list[str]] = collections.defaultdict(list)
    for row in rows:
        if not row.ok:
            reasons[row.error_type or "?"].append(f"{row.spec}: {(row.error or '')[:160]}")
    for reason, failures in sorted(reasons.items(), key=lambda item: -len(item[1])):
        lines.append(f"failed, {reason} ({len(failures)}):")
        lines += [f"  {failure}" for failure in failures]
    incomplete = [row for row in rows if row.ok and not row.complete]
    named = ", ".join(f"{row.spec} ({row.unknown_ops})" for row in incomplete)
    lines.append(f"incomplete ({len(incomplete)}, unknown ops in brackets): {named}")
    slowest = sorted((row for row in rows if row.analysis_seconds is not None), key=lambda row: -row.analysis_seconds)
    lines.append("slowest analyses: " + ", ".join(f"{row.spec} {row.analysis_seconds:.1f} s" for row in slowest[:8]))
    seconds = [row.analysis_seconds for row in rows if row.analysis_seconds is not None]
    builds = [row.build_seconds for row in rows if row.build_seconds is not None]
    lines.append(f"analysis seconds in the workers: {sum(seconds):.0f} (builds {sum(builds):.0f})")
    return "\n".join(lines)


def speedup(count: int, timm_every: int, cold: bool) -> str:
    """Wall time of the same ``count`` models with 1 worker, then 2 (warm starts), and with ``cold`` first
    1 worker of new interpreters (the time warm starts save)."""
    specs = spec_list(timm_every)
    step = max(len(specs) // count, 1)
    chosen = specs[::step][:count]
    walls = {}
    runs = ([("cold", 1)] if cold else []) + [("warm", 1), ("warm", 2)]
    for start_kind, jobs in runs:
        start = time.perf_counter()
        rows = zoo.run(chosen, jobs=jobs, time_limit=300, real_forward_limit=4 * 2**30, warm_start=start_kind == "warm")
        walls[start_kind, jobs] = time.perf_counter() - start
        print(f"{start_kind} starts, jobs={jobs}: {zoo.summarise(rows)} in {walls[start_kind, jobs]:.1f} s", flush=True)
    text = (
        f"{len(chosen)} models (every {step}-th of {len(specs)}): 1 worker {walls['warm', 1]:.1f} s, 2 workers "
        f"{walls['warm', 2]:.1f} s, speed-up {walls['warm', 1] / walls['warm', 2]:.2f}x"
    )
    if cold:
        ratio = walls["cold", 1] / walls["warm", 1]
        text += f"; 1 worker of new interpreters {walls['cold', 1]:.1f} s ({ratio:.2f}x warm)"
    return text + f"; load average {os.getloadavg()[0]:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    specs = commands.add_parser("specs", help="print the spec list")
    specs.add_argument("--timm-every", type=int, default=1, help="every k-th timm model (0: none; default 1: all)")
    report = commands.add_parser("summary", help="summarise a results file")
    report.add_argument("path")
    speed = commands.add_parser("speedup", help="wall time with 1 and 2 workers")
    speed.add_argument("--count", type=int, default=40)
    speed.add_argument("--timm-every", type=int, default=1)
    speed.add_argument("--cold", action="store_true", help="also 1 worker without warm starts")
    args = parser.parse_args(argv)
    if args.command == "specs":
        print("\n".join(spec_list(args.timm_every)))
    elif args.command == "summary":
        print(summary(args.path))
    else:
        print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} cores")
        print(speedup(args.count, args.timm_every, args.cold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
