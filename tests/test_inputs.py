"""Input normalisation: shapes, example tensors, args=/kwargs= with nested values, token ids."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from torchscan import InputError, TensorSpec, crawl_module
from torchscan.inputs import InputSpec, model_inputs, normalise_inputs


def test_shapes_get_the_batch_and_a_dtype_per_input() -> None:
    inputs = model_inputs(((16,), (3, 8, 8)), dtype=(torch.long, torch.float16), batch_size=2)
    assert [(s.shape, s.dtype) for s in inputs.specs] == [((2, 16), torch.long), ((2, 3, 8, 8), torch.float16)]
    assert inputs.positional_only and not inputs.kwargs
    assert normalise_inputs((3, 4)) == (InputSpec((1, 3, 4), torch.get_default_dtype(), "input_0"),)


def test_example_tensors_keep_their_full_shape_and_dtype_and_are_not_copied() -> None:
    ids = torch.randint(0, 9, (4, 7))
    image = torch.empty(2, 3, 5, 5, device="meta")
    inputs = model_inputs((ids, image), batch_size=8)
    assert [(s.shape, s.dtype) for s in inputs.specs] == [((4, 7), torch.long), ((2, 3, 5, 5), torch.float32)]
    assert inputs.specs[0].example is ids


def test_args_and_kwargs_nest_and_keep_plain_values() -> None:
    def forward(images: list, targets: dict | None = None, *, return_dict: bool = True) -> None: ...

    inputs = model_inputs(
        args=([torch.zeros(3, 4), TensorSpec((3, 6), torch.float16)],),
        kwargs={"targets": {"boxes": torch.zeros(2, 4)}, "return_dict": False},
        signature=inspect.signature(forward),
    )
    assert [(s.name, s.shape) for s in inputs.specs] == [
        ("images_0", (3, 4)),
        ("images_1", (3, 6)),
        ("targets_boxes", (2, 4)),
    ]
    args, kwargs, made = inputs.build(lambda spec: spec.shape)
    assert args == ([(3, 4), (3, 6)],) and kwargs == {"targets": {"boxes": (2, 4)}, "return_dict": False}
    assert made == [(3, 4), (3, 6), (2, 4)]
    assert not inputs.positional_only
    again, _, _ = inputs.build(lambda spec: spec.shape)
    assert again[0] is not args[0]  # fresh containers: a forward that mutates them changes nothing


def test_a_single_positional_value_and_kwargs_only() -> None:
    assert model_inputs(args=torch.zeros(2)).specs[0].shape == (2,)
    only = model_inputs(kwargs={"input_ids": torch.zeros(1, 5, dtype=torch.long)})
    assert only.args == () and only.specs[0].name == "input_ids"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ({}, "give the inputs"),
        ({"input_shape": (3,), "args": (torch.zeros(3),)}, "either"),
        ({"args": (torch.zeros(3),), "dtype": torch.long}, "dtype applies"),
        ({"kwargs": [1, 2]}, "mapping"),
        ({"input_shape": "abc"}, "input_shape must be"),
        ({"input_shape": (3, 0)}, "dimension < 1"),
        ({"input_shape": ((3,), (4,)), "dtype": (torch.long,)}, "one per input"),
        ({"input_shape": (torch.zeros(2, dtype=torch.long),), "dtype": (torch.float32,)}, "differs"),
        ({"input_shape": (3,), "batch_size": 0}, "batch_size"),
    ],
)
def test_bad_inputs_are_input_errors(call: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        model_inputs(**call)


def test_cli_dtype_for_token_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from torchscan.cli import main

    factory = tmp_path / "lm.py"
    factory.write_text(
        "import torch\n\ndef make():\n"
        "    return torch.nn.Sequential(torch.nn.Embedding(100, 16), torch.nn.Linear(16, 4))\n"
    )
    assert main([f"{factory}:make", "--input-shape", "7", "--dtype", "long", "-q", "--format", "json"]) == 0
    assert '"int64"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            {"input_shape": (3, 10**9, 10**9)},
            r"input 0 of shape \(1, 3, 1000000000, 1000000000\) and dtype float32",
        ),
        ({"input_shape": (2**70,)}, rf"input 0 shape \({2**70},\): dimension 0 \({2**70}\) overflows torch's int64"),
        ({"input_shape": ((3,), (4, 2**64))}, r"input 1 shape \(4, 18446744073709551616\): dimension 1"),
        ({"input_shape": (3,), "batch_size": 2**64}, r"input 0 shape \(18446744073709551616, 3\): dimension 0"),
        ({"input_shape": (2**62,), "batch_size": 4}, r"\(4, 4611686018427387904\) and dtype float32 is too large"),
        ({"input_shape": (2**62,), "dtype": torch.float16}, "is too large: 4611686018427387904 elements x 2 bytes"),
        ({"input_shape": (3, 2.5)}, r"input 0 shape \(3, 2.5\): dimension 1 is 2.5 \(float\), not an int"),
        ({"input_shape": (True, 3)}, r"dimension 0 is True \(bool\), not an int"),
        ({"input_shape": ((3,), (4, 1.0))}, "input 1 shape .*dimension 1 is 1.0"),
        ({"input_shape": (3, -1)}, r"input 0 shape \(3, -1\) has a dimension < 1"),
        ({"args": (TensorSpec((3, 10**10, 10**10)),)}, r"input 0 of shape \(3, 10000000000, 10000000000\)"),
        ({"args": (TensorSpec((3, 2.5)),)}, "dimension 1 is 2.5"),
        ({"kwargs": {"mask": TensorSpec((-1, 3))}}, r"input 0 \(mask\) shape \(-1, 3\) has a negative dimension"),
        ({"kwargs": {"mask": TensorSpec((0, 2**64))}}, r"input 0 \(mask\) shape .*dimension 1 .* overflows"),
    ],
)
def test_dims_and_sizes_torch_cannot_hold_are_input_errors(call: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        model_inputs(**call)


def test_the_largest_sizes_torch_holds_pass() -> None:
    limit = 2**63 - 1
    assert model_inputs((limit,), dtype=torch.bool, batch_size=None).specs[0].shape == (limit,)
    assert model_inputs((3, 10**9, 10**9), dtype=torch.float16).specs[0].shape == (1, 3, 10**9, 10**9)  # 6e18 bytes
    assert model_inputs(args=(TensorSpec((0, 4)),)).specs[0].shape == (0, 4)  # empty tensors stay allowed
    with pytest.raises(InputError, match="too large"):
        model_inputs((2**62,), dtype=torch.float16, batch_size=None)  # 2**63 bytes


def test_crawl_module_names_the_input_that_overflows() -> None:
    from torch import nn

    from torchscan import crawl_module

    class Two(nn.Module):
        def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return image.sum() + mask.sum()

    with pytest.raises(InputError, match=r"input 0 \(input\) of shape \(1, 3, 1000000000, 1000000000\)"):
        crawl_module(nn.Flatten(), (3, 10**9, 10**9))  # Flatten.forward(input)
    with pytest.raises(InputError, match=r"input 1 \(mask\) of shape \(2, 1000000000000, 1000000000000\)"):
        crawl_module(Two(), ((3, 4), (10**12, 10**12)), batch_size=2)


class _TwoInputs(torch.nn.Module):
    def forward(self, x, y, *, scale: float = 1.0):
        return (x + y) * scale


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            {"input_shape": (3,)},
            r"_TwoInputs.forward\(x, y, \*, scale: 'float' = 1.0\) cannot take the inputs given "
            r"\(\(1, 3\) float32\): missing a required argument: 'y'",
        ),
        (
            {"input_shape": [(3,), (3,), (3,)]},
            r"given \(\(1, 3\) float32, \(1, 3\) float32, \(1, 3\) float32\): too many",
        ),
        ({"args": (torch.zeros(1, 3), torch.zeros(1, 3)), "kwargs": {"shift": 2}}, r"shift=int\): got an unexpected"),
    ],
)
def test_inputs_the_forward_cannot_take_are_an_input_error_before_any_capture(
    call: dict, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing, extra or unknown input was a ``TypeError`` inside the capture, which then ran a real forward to
    fail the same way (``recording a forward of ... (real-forward) failed``)."""
    import torchscan.graph.capture as capture

    monkeypatch.setattr(capture, "capture_with_fallback", None)  # nothing is captured
    with pytest.raises(InputError, match=match):
        crawl_module(_TwoInputs(), **call)


def test_a_call_of_its_own_may_supply_the_inputs() -> None:
    """A class's own ``__call__`` may hand the forward other arguments: no check."""

    class Called(_TwoInputs):
        def __call__(self, x):
            return super().__call__(x, x)

    assert crawl_module(Called(), (3,)).context.output_shapes == ((1, 3),)
    assert crawl_module(_TwoInputs(), [(3,), (3,)], batch_size=2).context.output_shapes == ((2, 3),)
