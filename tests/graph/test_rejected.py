"""A check in the model's own code that rejects its input is reported as the model's, with no real forward."""

from __future__ import annotations

import json
import textwrap
import types
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import torchscan.graph.capture as capture
from torchscan import crawl_module
from torchscan.errors import InputError
from torchscan.graph.rejected import RejectedByModel, own_check

MODELS = """
import torch
from torch import nn


class Features(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 2)

    def forward(self, x):
        if x.shape[-1] != 5:
            raise ValueError(f"need 5 features, got {x.shape[-1]}")
        return self.linear(x)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Identity(), Features())

    def forward(self, x):
        return self.body(x)


class Asserted(nn.Module):
    def forward(self, x):
        assert x.ndim == 3
        return x + 1


class Checked(nn.Module):
    def forward(self, x):
        torch._check(x.shape[1] == 3, lambda: f"three channels, got {x.shape[1]}")
        return x + 1


class TorchAssert(nn.Module):
    def forward(self, x):
        n, c = x.shape
        torch._assert(c == 3, f"three channels, got {c}")
        return x * 2


class Unpacked(nn.Module):
    def forward(self, x):
        b, c, h, w = x.shape
        return x.reshape(b, c * h * w)


class OnValues(nn.Module):
    def forward(self, x):
        if (x < -100).any():  # reads values: fake tensors cannot answer, a real forward can
            raise ValueError("too negative")
        return x + 1


class Translated(nn.Module):
    def forward(self, x):
        try:
            return {"a": x}["b"]
        except KeyError:
            raise ValueError("no 'b' key")


def raising(x):
    raise ValueError("raised by the model's code")


def translating():
    try:
        {}["key"]
    except KeyError:
        raise ValueError("translated")


def by_operation(text):
    return int(text)  # the builtin raises: no raise statement of the model's


def by_check(n):
    torch._check(n == 3, lambda: f"n is {n}")
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> types.ModuleType:
    """The models above, in a file of their own (user code, as a model's library is)."""
    path = tmp_path_factory.mktemp("rejected") / "rejecting_models.py"
    path.write_text(textwrap.dedent(MODELS), encoding="utf-8")
    module = types.ModuleType("rejecting_models")
    module.__file__ = str(path)
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), vars(module))
    return module


def _raised(function, *args) -> BaseException:
    try:
        function(*args)
    except Exception as error:
        return error
    raise AssertionError("nothing raised")


def test_own_check_finds_the_models_raise_and_torch_checks(models: types.ModuleType) -> None:
    frame = own_check(_raised(models.raising, 1))
    assert frame is not None and frame.name == "raising" and Path(frame.filename).name == "rejecting_models.py"
    assert "raise ValueError" in (frame.line or "")
    frame = own_check(_raised(models.by_check, 4))  # torch._check -> torch._check_with: the caller's check
    assert frame is not None and frame.name == "by_check"


def test_own_check_refuses_what_is_no_check(models: types.ModuleType) -> None:
    assert own_check(_raised(models.translating)) is None  # raised while handling another: a translation
    assert own_check(_raised(models.by_operation, "x")) is None  # a builtin's error on the model's line
    assert own_check(_raised(json.loads, "{")) is None  # the standard library's raise
    assert own_check(_raised(torch.zeros(2).add, torch.zeros(3))) is None  # torch's kernel
    interpolate = nn.functional.interpolate
    assert own_check(_raised(interpolate, torch.zeros(1, 1, 2), None, None)) is None  # torch's own raise


@pytest.fixture
def no_real_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args, **kwargs):
        raise AssertionError("a real forward was run")

    monkeypatch.setattr(capture, "_record_real", refused)


@pytest.mark.parametrize(
    ("name", "shape", "where", "reason"),
    [
        ("Features", (4,), "Features rejected", "ValueError: need 5 features, got 4"),
        ("Outer", (4,), "layer 'body.1' (Features) rejected", "ValueError: need 5 features, got 4"),
        ("Asserted", (4,), "Asserted rejected", "AssertionError"),
        ("Checked", (4,), "Checked rejected", "RuntimeError: three channels, got 4"),
        ("TorchAssert", (4,), "TorchAssert rejected", "AssertionError: three channels, got 4"),
        ("Unpacked", (4,), "Unpacked rejected", "ValueError: not enough values to unpack (expected 4, got 2)"),
    ],
)
def test_a_check_of_the_models_code_is_the_error(
    models: types.ModuleType, no_real_forward: None, name: str, shape: tuple[int, ...], where: str, reason: str
) -> None:
    """The error names the layer, the model's input and the check's line and message (the sizes as a real
    forward would print them, not a trace's node names); no real forward runs."""
    model = getattr(models, name)()
    with pytest.raises(Exception) as eager:
        model(torch.zeros(1, *shape))
    assert str(eager.value) in reason  # a real forward fails the same way
    with pytest.raises(InputError) as caught:
        crawl_module(model, shape)
    message = str(caught.value)
    assert message.startswith(f"{where} the input (x (1, {', '.join(map(str, shape))}) float32)")
    assert f"none was run): {reason}\n" in message
    assert 'rejecting_models.py", line ' in message


def test_the_same_checks_pass_a_good_input(models: types.ModuleType, no_real_forward: None) -> None:
    """Each check decided on the input's sizes: a good input gets its report from the trace."""
    for name, shape in [
        ("Features", (5,)),
        ("Outer", (5,)),
        ("Asserted", (2, 2)),
        ("Checked", (3,)),
        ("Unpacked", (2, 2, 2)),
    ]:
        report = crawl_module(getattr(models, name)(), shape)
        assert report.context.capture == "torch.fx" and report.totals.complete, name


def test_a_check_on_values_or_a_translated_error_still_gets_the_real_forward(models: types.ModuleType) -> None:
    report = crawl_module(models.OnValues(), (4,))
    assert {"capture-fallback", "real-forward"} <= {d.code for d in report.diagnostics}
    with pytest.raises(Exception, match="no 'b' key") as caught:
        crawl_module(models.Translated(), (4,))
    assert not isinstance(caught.value, InputError) and "real-forward" in str(caught.value)


def test_a_sized_torch_check_is_decided_by_the_trace(models: types.ModuleType) -> None:
    """``torch._check`` on sizes was taken as holding by the trace (a report for an input the model rejects):
    it is decided as an ``if`` on sizes is, a guard of the graph."""
    report = crawl_module(models.Checked(), (3,))
    assert "shape-specialized" in {d.code for d in report.diagnostics}


def test_the_batch_dimension_given_too_gets_the_hint(no_real_forward: None) -> None:
    """torchvision's ViT given (1, 3, H, W) as ``input_shape``: its ``n, c, h, w = x.shape`` rejects the 5-d input
    (a real forward ran before, to fail the same way), and the error says what the model takes."""
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16
    ).eval()
    with pytest.raises(RejectedByModel) as caught:
        crawl_module(model, (1, 3, 32, 32))
    message = str(caught.value)
    assert message.startswith("VisionTransformer rejected the input (x (1, 1, 3, 32, 32) float32)")
    assert "ValueError: too many values to unpack (expected 4)" in message and "n, c, h, w = x.shape" in message
    assert message.endswith(
        "hint: input_shape excludes the batch dimension (batch_size=1 is prepended): the model takes (3, 32, 32)"
    )
    assert caught.value.input_shapes == ((1, 1, 3, 32, 32),)
    with pytest.raises(RejectedByModel, match="Wrong image height! Expected 32 but got 48!") as caught:
        crawl_module(model, (3, 48, 32))
    assert "hint" not in str(caught.value)
