"""The ``torchscan`` command's entry point (the console script and ``python -m torchscan``).

A run of the command is mostly imports and building the model: torch, torchscan, the model's library
(torchvision's import loads ``torch._dynamo``), hundreds of thousands of objects that live until the
process exits. With the collector on, the allocations of those imports trip it again and again, and
each full collection walks everything imported so far (about a third of a ``torchscan resnet50``
run). This process is the command's own: it imports the command with the collector off, freezes what
it imported (:func:`~torchscan.collector.frozen_after`), and the command builds its models the same
way; the analysis pauses the collector as everywhere. :func:`torchscan.cli.main` called from Python
leaves the caller's collector as found.
"""

from __future__ import annotations

from collections.abc import Sequence

from torchscan.collector import frozen_after

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command (``argv``: its arguments, default ``sys.argv[1:]``); its exit status."""
    with frozen_after():
        from torchscan import cli  # torch and the analysis: imported here, with the collector off
    return cli.main(argv, own_process=True)
