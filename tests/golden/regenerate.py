"""Regenerate tests/golden/torchvision_counts.json (exact integers): ``python -m tests.golden.regenerate``.

Review the diff before committing: every changed integer is a changed convention or a bug.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torchvision

from torchscan import crawl_module

HERE = Path(__file__).parent


def input_shape(name: str) -> tuple[int, int, int]:
    return (3, 299, 299) if name == "inception_v3" else (3, 224, 224)


def exact_counts(name: str) -> dict[str, int | bool]:
    model = torchvision.models.get_model(name, weights=None).eval()
    totals = crawl_module(model, input_shape(name)).totals
    return {
        "params": totals.params,
        "flops": totals.flops,
        "macs": totals.macs,
        "dmas": totals.dmas,
        "complete": totals.complete,
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    names = json.loads((HERE / "published.json").read_text())["models"]
    counts = {name: exact_counts(name) for name in names}
    (HERE / "torchvision_counts.json").write_text(json.dumps(counts, indent=1) + "\n")


if __name__ == "__main__":
    main()
