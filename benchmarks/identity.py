"""Reports identical before and after a change: dump every report of a fixed corpus, then compare two dumps.

    python benchmarks/identity.py dump before.json        # on the old checkout (PYTHONPATH=...)
    python benchmarks/identity.py dump after.json         # on the new one
    python benchmarks/identity.py compare before.json after.json

48 models (21 torchvision classifiers; segmentation, video, detection and optical flow; 13 timm models; Hugging
Face GPT-2, BERT, T5 and Llama from small configs; a custom 1-D net with padding, a dilated pool and an LSTM, in
train and eval), each at batch 2 with the receptive field: the full ``to_dict()``, every graph node's attributes,
the edges and the rendered table. A refactoring or a speed change must give equal dumps; a change of numbers
shows which models and which fields moved. timm and transformers cases are skipped where not installed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision import models as tvm

import torchscan
from torchscan.render.table import render_table

Case = tuple[str, Callable[[], torch.nn.Module], tuple[int, ...] | None, dict[str, Any]]


def corpus() -> list[Case]:
    """The models, each with its input shape (or ``None`` and explicit ``args``/``kwargs``)."""
    cases = []
    TV = [
        "resnet18",
        "resnet50",
        "mobilenet_v2",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "densenet121",
        "shufflenet_v2_x0_5",
        "squeezenet1_0",
        "googlenet",
        "inception_v3",
        "vgg11_bn",
        "alexnet",
        "regnet_x_400mf",
        "mnasnet0_5",
        "convnext_tiny",
        "swin_t",
        "vit_b_16",
        "maxvit_t",
        "efficientnet_v2_s",
        "wide_resnet50_2",
        "resnext50_32x4d",
    ]
    for name in TV:
        size = 299 if name == "inception_v3" else 224
        cases.append((name, lambda name=name: tvm.get_model(name, weights=None), (3, size, size), {}))
    cases.append(
        (
            "deeplabv3_mobilenet",
            lambda: tvm.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None),
            (3, 128, 128),
            {},
        )
    )
    cases.append(
        ("fcn_resnet50", lambda: tvm.segmentation.fcn_resnet50(weights=None, weights_backbone=None), (3, 96, 96), {})
    )
    cases.append(("r3d_18", lambda: tvm.video.r3d_18(weights=None), (3, 8, 64, 64), {}))
    cases.append(("mc3_18", lambda: tvm.video.mc3_18(weights=None), (3, 8, 64, 64), {}))
    cases.append(("s3d", lambda: tvm.video.s3d(weights=None), (3, 16, 96, 96), {}))
    cases.append(("mvit_v2_s", lambda: tvm.video.mvit_v2_s(weights=None).eval(), (3, 16, 224, 224), {}))
    cases.append(
        (
            "fasterrcnn_mbv3",
            lambda: tvm.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None).eval(),
            (3, 128, 128),
            {},
        )
    )
    cases.append(
        (
            "raft_small",
            lambda: tvm.optical_flow.raft_small(weights=None).eval(),
            None,
            {"args": (torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128))},
        )
    )
    try:
        import timm

        for name in [
            "rexnet_100",
            "levit_128s",
            "edgenext_xx_small",
            "tf_efficientnet_b0",
            "convnext_atto",
            "pvt_v2_b0",
            "xcit_nano_12_p16_224",
            "fastvit_t8",
            "ghostnet_100",
            "deit_tiny_patch16_224",
            "tf_mobilenetv3_small_100",
            "resnet18d",
            "coatnet_0_rw_224",
        ]:
            cases.append(
                ("timm:" + name, lambda name=name: timm.create_model(name, pretrained=False), (3, 224, 224), {})
            )
    except ImportError:
        pass
    try:
        import transformers as tr

        cases.append(
            (
                "hf:gpt2",
                lambda: tr.GPT2Model(tr.GPT2Config(n_layer=2, n_embd=64, n_head=4)),
                None,
                {"args": (torch.randint(0, 100, (2, 32)),)},
            )
        )
        cases.append(
            (
                "hf:bert",
                lambda: tr.BertModel(
                    tr.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128)
                ),
                None,
                {"args": (torch.randint(0, 100, (2, 32)),)},
            )
        )
        cases.append(
            (
                "hf:t5",
                lambda: tr.T5Model(tr.T5Config(num_layers=2, d_model=64, num_heads=4, d_ff=128, d_kv=16)),
                None,
                {
                    "args": (torch.randint(0, 100, (2, 16)),),
                    "kwargs": {"decoder_input_ids": torch.randint(0, 100, (2, 8))},
                },
            )
        )
        cases.append(
            (
                "hf:llama",
                lambda: tr.LlamaModel(
                    tr.LlamaConfig(
                        num_hidden_layers=2,
                        hidden_size=64,
                        num_attention_heads=4,
                        intermediate_size=128,
                        vocab_size=100,
                    )
                ),
                None,
                {"args": (torch.randint(0, 100, (2, 32)),)},
            )
        )
    except ImportError:
        pass
    # custom: padding, 1-d, lstm, train mode

    class Custom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv1d(4, 8, 3, dilation=2, padding="same")
            self.p = torch.nn.MaxPool1d(3, 2, dilation=2)
            self.lstm = torch.nn.LSTM(8, 16, batch_first=True)
            self.bn = torch.nn.BatchNorm1d(8)

        def forward(self, x):
            y = torch.nn.functional.pad(self.bn(self.c(x)), (1, 2))
            y = self.p(y).relu()
            out, _ = self.lstm(y.transpose(1, 2))
            return out.sum(1) * 2

    cases.append(("custom-train", lambda: Custom().train(), (4, 50), {}))
    cases.append(("custom-eval", lambda: Custom().eval(), (4, 50), {}))

    return cases


def _plain(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)


def dump(path: str) -> None:
    warnings.filterwarnings("ignore")
    results: dict[str, Any] = {}
    for name, build, shape, options in corpus():
        torch.manual_seed(0)
        try:
            model = build()
            if shape is not None:
                report = torchscan.crawl_module(model, shape, receptive_field=True, batch_size=2, **options)
            else:
                report = torchscan.crawl_module(model, receptive_field=True, **options)
            graph = report.graph
            results[name] = {
                "dict": _plain(report.to_dict()),
                "nodes": _plain({node: dict(data) for node, data in graph.nodes(data=True)}),
                "edges": sorted(map(list, graph.edges())),
                "table": render_table(report),
            }
            print("ok", name, flush=True)
        except Exception as error:
            results[name] = {"error": f"{type(error).__name__}: {error}"[:500]}
            print("ERR", name, results[name]["error"][:200], flush=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, sort_keys=True)


def compare(first: str, second: str) -> int:
    """Print the models and fields that differ (the first differing node of each); the count of models."""
    with open(first, encoding="utf-8") as handle:
        a = json.load(handle)
    with open(second, encoding="utf-8") as handle:
        b = json.load(handle)
    differ = 0
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name) or {}, b.get(name) or {}
        if x == y:
            continue
        differ += 1
        parts = [part for part in sorted(set(x) | set(y)) if x.get(part) != y.get(part)]
        print("DIFF", name, parts)
        for part in parts:
            if part == "nodes":
                for node in sorted(set(x[part]) | set(y[part])):
                    if x[part].get(node) != y[part].get(node):
                        print(
                            "  node",
                            node,
                            "\n   A",
                            str(x[part].get(node))[:600],
                            "\n   B",
                            str(y[part].get(node))[:600],
                        )
                        break
            else:
                print("  A", str(x.get(part))[:300], "\n  B", str(y.get(part))[:300])
    print(len(a), len(b), "models;", differ, "differ")
    return differ


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dump", help="write every report of the corpus").add_argument("path")
    both = commands.add_parser("compare", help="the models whose reports differ")
    both.add_argument("first")
    both.add_argument("second")
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.path)
        return 0
    return 1 if compare(args.first, args.second) else 0


if __name__ == "__main__":
    sys.exit(main())
