"""Specs to jobs: inputs, patterns, spec files, each model's default input, sizes and batch sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torchvision

from torchscan.errors import InputError, TorchscanError
from torchscan.zoo.records import ZooInput
from torchscan.zoo.specs import expand, jobs, parse_input, parse_line


def test_inputs_parse_with_keyword_and_dtype() -> None:
    assert parse_input("3x224x224") == ZooInput((3, 224, 224))
    assert parse_input("3,32,32:float16") == ZooInput((3, 32, 32), "float16")
    assert parse_input("input_ids=128:long") == ZooInput((128,), "int64", "input_ids")
    assert parse_line("m.py:f 3x8x8 7:int64") == ("m.py:f", (ZooInput((3, 8, 8)), ZooInput((7,), "int64")))
    for bad in ("3xAx2", "0x3", "3x3:complex", "not an id=3", ""):
        with pytest.raises(InputError):
            parse_input(bad)


def test_torchvision_patterns_expand_over_list_models() -> None:
    names = [spec for spec, _, _ in expand(["resnet*"])]
    assert names == sorted(name for name in torchvision.models.list_models() if name.startswith("resnet"))
    with pytest.raises(TorchscanError, match="matches no model"):
        expand(["no_such_*"])
    with pytest.raises(TorchscanError, match="patterns apply"):
        expand(["pkg.module:make_*"])


def test_timm_patterns_expand_over_timm() -> None:
    timm = pytest.importorskip("timm")
    assert [spec for spec, _, _ in expand(["timm:resnet1*"])] == ["timm:" + n for n in timm.list_models("resnet1*")]


def test_default_inputs() -> None:
    (inception,) = jobs(["inception_v3"])
    assert inception.inputs == ((ZooInput((1, 3, 299, 299)),),)
    (video,) = jobs(["r3d_18"])
    assert video.inputs == ((ZooInput((1, 3, 16, 112, 112)),),)
    (flow,) = jobs(["raft_small"])
    assert flow.inputs == ((ZooInput((1, 3, 224, 224)), ZooInput((1, 3, 224, 224))),)
    (resnet,) = jobs(["resnet18"])
    assert resnet.inputs == ((ZooInput((1, 3, 224, 224)),),)


def test_timm_default_input_is_its_pretrained_config() -> None:
    pytest.importorskip("timm")
    (job,) = jobs(["timm:vit_base_patch16_384"])
    assert job.inputs == ((ZooInput((1, 3, 384, 384)),),)


def test_hugging_face_default_inputs_follow_the_architecture() -> None:
    pytest.importorskip("transformers")
    (gpt2,) = jobs(["hf:gpt2"])
    assert gpt2.inputs == ((ZooInput((1, 128), "int64", "input_ids"),),)
    (t5,) = jobs(["hf:t5,num_layers=1"])
    assert t5.inputs == ((ZooInput((1, 128), "int64", "input_ids"), ZooInput((1, 128), "int64", "decoder_input_ids")),)
    (vit,) = jobs(["hf:vit,image_size=64"])
    assert vit.inputs == ((ZooInput((1, 3, 64, 64), name="pixel_values"),),)
    with pytest.raises(TorchscanError, match="key=value"):
        jobs(["hf:gpt2,n_layer"])


def test_sizes_and_batch_sizes_multiply() -> None:
    (job,) = jobs(["resnet18"], sizes=[224, 384], batch_sizes=[1, 8])
    assert [inputs[0].shape for inputs in job.inputs] == [
        (1, 3, 224, 224),
        (8, 3, 224, 224),
        (1, 3, 384, 384),
        (8, 3, 384, 384),
    ]
    (tokens,) = jobs(["m.py:f 16:int64 3x8x8 4x5"], sizes=[32])
    assert tokens.inputs == ((ZooInput((1, 32), "int64"), ZooInput((1, 3, 32, 32)), ZooInput((1, 4, 5))),)
    (given,) = jobs(["m.py:f"], inputs=["3x10x10"])
    assert given.inputs == ((ZooInput((1, 3, 10, 10)),),)
    with pytest.raises(InputError):
        jobs(["resnet18"], batch_sizes=[0])


def test_spec_files_read_relative_to_their_folder(tmp_path: Path) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "list.txt").write_text("# models\nmodel.py:make 3x8x8   # a comment\n\nresnet18\nresnet18\n")
    found = expand(["@sub/list.txt", "other.py:make"], folder=tmp_path)
    assert found == [
        ("model.py:make", f"{folder.resolve() / 'model.py'}:make", (ZooInput((3, 8, 8)),)),
        ("resnet18", "resnet18", ()),
        ("other.py:make", f"{(tmp_path / 'other.py').resolve()}:make", ()),
    ]
    with pytest.raises(TorchscanError, match="does not exist"):
        expand(["@missing.txt"], folder=tmp_path)


def test_hugging_face_patterns_expand_over_what_automodel_builds() -> None:
    """``hf:*`` stopped on the first model type with no ``AutoModel`` architecture (a tokenizer's or a sub-model's
    configuration): 197 of transformers 5.25's 831 types. A pattern now expands over the types ``AutoModel``
    builds, and a model whose default inputs cannot be worked out (funnel: two architectures for one type) is a
    job with one empty input set, whose row says why, instead of an error that stops every other model."""
    pytest.importorskip("transformers")
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    names = [spec.removeprefix("hf:") for spec, _, _ in expand(["hf:*"])]
    assert names and all(name in MODEL_MAPPING_NAMES for name in names)
    assert "bert" in names and "aimv2_text_model" not in names
    funnel, bert = jobs(["hf:funnel", "hf:bert"])
    assert funnel.inputs == ((),) and bert.inputs == ((ZooInput((1, 128), "int64", "input_ids"),),)
