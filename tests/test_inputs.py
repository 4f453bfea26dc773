"""Input normalisation: shapes, example tensors, args=/kwargs= with nested values, token ids."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from torchscan import InputError, TensorSpec
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
