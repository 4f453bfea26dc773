"""Static memory estimates vs real CUDA measurements; prints a markdown table.

    python benchmarks/memory_cuda.py          # exits 2 without CUDA, 1 if a check misses 15%

Rows: inference activation peak (``max_memory_allocated`` − allocated before the inputs, one
no-grad forward, batch 32, 224×224) for ResNet-50 and ViT-B/16; the whole peak of a
steady-state ResNet-50 training step with Adam at batch 32 (second step, foreach Adam, loss =
output sum). Random weights; no download. Runs in well under 3 minutes on an H100.
"""

from __future__ import annotations

import sys
import time

import torch
import torchvision

from torchscan import crawl_module
from torchscan.measure.cuda import measure_cuda, measure_cuda_training

TOLERANCE = 0.15
BATCH = 32
SHAPE = (3, 224, 224)


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f}"


def main() -> int:
    if not torch.cuda.is_available():
        print("memory_cuda: no CUDA device, nothing measured", file=sys.stderr)
        return 2
    rows: list[tuple[str, int, int]] = []
    for name in ("resnet50", "vit_b_16"):
        model = torchvision.models.get_model(name, weights=None).eval()
        static = crawl_module(model, SHAPE, batch_size=BATCH).memory
        assert static is not None
        model = model.cuda()
        measured = measure_cuda(model, [(BATCH, *SHAPE)], [torch.float32], static.activation_peak_bytes)
        rows.append((f"{name} inference activation peak", static.activation_peak_bytes, measured.activation_peak_bytes))
        del model
        torch.cuda.empty_cache()
    model = torchvision.models.resnet50(weights=None).train()
    static = crawl_module(model, SHAPE, batch_size=BATCH).memory
    assert static is not None
    inputs = [torch.randn(BATCH, *SHAPE, device="cuda")]
    measured_step = measure_cuda_training(model, inputs, lambda params: torch.optim.Adam(params, foreach=True))
    rows.append(("resnet50 training step peak (Adam)", static.training_for("adam").peak_bytes, measured_step))

    device = torch.cuda.get_device_name()
    print(f"Device: {device}, torch {torch.__version__}, batch {BATCH}, input {SHAPE}\n")
    print("| check | static (MiB) | measured (MiB) | error |")
    print("|---|---:|---:|---:|")
    failed = 0
    for label, static_bytes, measured_bytes in rows:
        error = static_bytes / measured_bytes - 1
        failed += abs(error) > TOLERANCE
        print(f"| {label} | {_mib(static_bytes)} | {_mib(measured_bytes)} | {error:+.1%} |")
    return 1 if failed else 0


if __name__ == "__main__":
    start = time.perf_counter()
    status = main()
    print(f"\n({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    sys.exit(status)
