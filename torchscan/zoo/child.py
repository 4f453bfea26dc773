"""The worker process: ``python -m torchscan.zoo.child`` started by :func:`torchscan.zoo.worker.run_job`, or a
child forked by a warm-start process (:mod:`torchscan.zoo.zygote`) running :func:`serve`.

It reads one pickled ``(Job, Settings, together)`` from stdin (the job's channel), limits its own address
space (``RLIMIT_AS``: what it holds after importing torch plus ``Settings.memory_limit``), analyses the job
(:func:`torchscan.zoo.analyse.analyse_job`) and writes each row as one JSON line on the stdout it was
given. Everything else — the model's prints, warnings, a crash's stack (``faulthandler``) — goes to
stderr. It exits when its stdin closes (the process that started it is gone).
"""

from __future__ import annotations

import faulthandler
import json
import os
import pickle
import sys
import threading
from typing import BinaryIO, TextIO

from torchscan.collector import frozen_after

__all__ = ["limit_memory", "main", "serve"]


def limit_memory(limit: int | None) -> None:
    """Cap this process's address space at its current size plus ``limit`` bytes (``RLIMIT_AS``; Linux
    reads the current size from ``/proc``). Nothing where ``resource`` is missing (Windows)."""
    if limit is None:
        return
    try:
        import resource
    except ImportError:
        return
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            current = int(handle.read().split()[0]) * resource.getpagesize()
    except OSError:
        current = 0
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = current + limit if hard == resource.RLIM_INFINITY else min(current + limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _exit_with_parent(reader: BinaryIO) -> None:
    """Wait for ``reader`` to close (the parent is done or gone), then end this process at once."""
    reader.read()
    os._exit(3)


def serve(reader: BinaryIO, channel: TextIO) -> int:
    """Read the job from ``reader``, write its rows on ``channel``; end the process if ``reader`` closes."""
    with frozen_after():  # the job's own process: what it imports lives until it exits, walked by no collection
        job, settings, together = pickle.load(reader)  # the zoo's records: torch is imported here
        threading.Thread(target=_exit_with_parent, args=(reader,), name="torchscan-zoo-parent", daemon=True).start()

        import torch

        from torchscan.zoo.analyse import analyse_job

    torch.set_num_threads(1)  # jobs run side by side: one core each
    limit_memory(settings.memory_limit)
    for row in analyse_job(job, settings, together):
        channel.write(json.dumps(row.to_dict()) + "\n")
        channel.flush()
    return 0


def main() -> int:
    channel: TextIO = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the rows; fd 1 itself now goes to stderr
    os.dup2(2, 1)
    faulthandler.enable()
    return serve(sys.stdin.buffer, channel)


if __name__ == "__main__":
    raise SystemExit(main())
