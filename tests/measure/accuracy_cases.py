"""Models whose static memory figures are checked against real CPU passes (issue 16's corpus, small).

Each case builds a randomly initialised model (nothing downloaded) and the call to make; the models
are in train mode, so the inference pass runs them under ``no_grad`` as they are and the training
step includes their dropout masks and batch statistics (the static estimate sees the same mode).
Shared by ``tests/measure/test_cpu.py`` and ``benchmarks/memory_cpu.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torchvision
from torch import nn

from torchscan import crawl_module
from torchscan.measure.cpu import OPTIMIZER_FACTORIES, measure_inference, measure_training


@dataclass(frozen=True)
class Case:
    """A model, its positional inputs (shapes and dtype) or keyword tensors, and the library it needs."""

    name: str
    build: Callable[[], nn.Module]
    shapes: tuple[tuple[int, ...], ...] = ()
    dtype: torch.dtype = torch.float32
    kwargs: Callable[[], dict[str, Any]] | None = None
    needs: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class UNet(nn.Module):
    """A two-level UNet: conv-BN-ReLU pairs, max-pool down, transposed-conv up, skips concatenated."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        c = channels
        self.down1, self.down2, self.bottom = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), block(4 * c, 2 * c)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2), block(2 * c, c)
        self.head = nn.Conv2d(c, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(self.pool(d1))
        b = self.bottom(self.pool(d2))
        u2 = self.dec2(torch.cat([self.up2(b), d2], 1))
        u1 = self.dec1(torch.cat([self.up1(u2), d1], 1))
        return self.head(u1)


class LSTMTagger(nn.Module):
    """Token embedding, a two-layer LSTM, a linear head per step."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(500, 64)
        self.lstm = nn.LSTM(64, 128, num_layers=2, batch_first=True)
        self.head = nn.Linear(128, 500)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(ids))
        return self.head(out)


def hf_model(model: str, config: str, **settings: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers

        return getattr(transformers, model)(getattr(transformers, config)(**settings))

    return build


def text_inputs(tokens: int, decoder: int = 0, mask: bool = True) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        ids = torch.zeros(2, tokens, dtype=torch.long)
        kwargs: dict[str, Any] = {"input_ids": ids}
        if mask:  # the second sequence padded: an all-ones mask lets Hugging Face skip building it, a
            # data-dependent shortcut (``padding_mask.all()``) that a fake tensor, never read, cannot take
            kwargs["attention_mask"] = torch.ones_like(ids)
            kwargs["attention_mask"][1, -(tokens // 4) :] = 0
        if decoder:
            kwargs["decoder_input_ids"] = torch.zeros(2, decoder, dtype=torch.long)
        return kwargs

    return make


_SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256}


def _vision(name: str, **settings: Any) -> Callable[[], nn.Module]:
    return lambda: torchvision.models.get_model(name, weights=None, **settings)


CASES: tuple[Case, ...] = (
    Case("resnet18", _vision("resnet18"), ((2, 3, 64, 64),)),
    Case("mobilenet_v2", _vision("mobilenet_v2"), ((2, 3, 64, 64),)),
    Case("mobilenet_v3_small", _vision("mobilenet_v3_small"), ((2, 3, 64, 64),)),
    Case("efficientnet_b0", _vision("efficientnet_b0"), ((2, 3, 64, 64),)),
    Case("convnext_tiny", _vision("convnext_tiny"), ((2, 3, 64, 64),)),
    Case("swin_t", _vision("swin_t"), ((2, 3, 64, 64),)),
    Case(
        "vit (torchvision, small)",
        lambda: torchvision.models.VisionTransformer(
            image_size=64, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=256
        ),
        ((2, 3, 64, 64),),
    ),
    Case("unet", UNet, ((2, 3, 64, 64),)),
    Case("lstm", LSTMTagger, ((2, 32),), dtype=torch.long),
    Case(
        "bert",
        hf_model("BertModel", "BertConfig", vocab_size=1000, **_SMALL),
        kwargs=text_inputs(64),
        needs="transformers",
    ),
    Case(
        "gpt2",
        hf_model("GPT2LMHeadModel", "GPT2Config", vocab_size=1000, n_embd=64, n_layer=2, n_head=4, n_positions=128),
        kwargs=text_inputs(64, mask=False),
        needs="transformers",
    ),
    Case(
        "t5",
        hf_model(
            "T5ForConditionalGeneration",
            "T5Config",
            vocab_size=1000,
            d_model=64,
            d_ff=256,
            num_layers=2,
            num_heads=4,
            d_kv=16,
            use_cache=False,
        ),
        kwargs=text_inputs(64, decoder=16),
        needs="transformers",
    ),
)


@dataclass(frozen=True)
class Figures:
    """Static and measured bytes of one case: inference peak (inputs included), training steps."""

    static_inference: int
    measured_inference: int
    static_training: dict[str, int]
    measured_training: dict[str, int]

    def errors(self) -> dict[str, float]:
        """``static / measured − 1`` for ``inference`` and each optimizer."""
        errors = {"inference": self.static_inference / self.measured_inference - 1}
        for name, measured in self.measured_training.items():
            errors[name] = self.static_training[name] / measured - 1
        return errors


class Autocast(nn.Module):
    """``model`` with its forward under ``torch.autocast`` (PyTorch's mixed-precision recipe: the forward in the
    region, the backward and the step outside)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast("cpu", dtype=self.dtype):
            return self.model(*args, **kwargs)


def under_autocast(case: Case, dtype: torch.dtype = torch.bfloat16) -> Case:
    """``case`` with its model's forward under ``torch.autocast`` (:class:`Autocast`)."""
    build = case.build
    return dataclasses.replace(case, name=f"{case.name} (autocast)", build=lambda: Autocast(build(), dtype))


def instance(case: Case) -> tuple[nn.Module, list[torch.Tensor], dict[str, Any]]:
    """``case``'s model in train mode, its positional inputs and its keyword tensors, drawn from the global RNG
    (the caller seeds it)."""
    model = case.build().train()
    kwargs = case.kwargs() if case.kwargs is not None else {}
    inputs = [
        torch.randn(shape) if case.dtype.is_floating_point else torch.zeros(shape, dtype=case.dtype)
        for shape in case.shapes
    ]
    return model, inputs, kwargs


def analyse(model: nn.Module, inputs: list[torch.Tensor], kwargs: dict[str, Any]) -> Any:
    """The report of ``model`` called on ``inputs`` and ``kwargs`` as given (no batch dim prepended)."""
    if kwargs:
        return crawl_module(model, kwargs=kwargs, batch_size=None)
    return crawl_module(model, args=tuple(inputs), batch_size=None)


def figures(case: Case, optimizers: tuple[str, ...] = ("sgd", "adam")) -> Figures:
    """Analyse and measure ``case`` (seeded: the same figures every run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, inputs, kwargs = instance(case)
        memory = analyse(model, inputs, kwargs).memory
        assert memory is not None
        inference = measure_inference(model, inputs, kwargs).total_bytes
        training = {
            name: measure_training(model, inputs, OPTIMIZER_FACTORIES[name], kwargs=kwargs).total_bytes
            for name in optimizers
        }
    return Figures(
        static_inference=memory.activation_peak_bytes,
        measured_inference=inference,
        static_training={name: memory.training_for(name).peak_bytes for name in optimizers},
        measured_training=training,
    )
