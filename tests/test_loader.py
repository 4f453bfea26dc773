"""The CLI's model loader: every torchvision name builds and is analysed with the network blocked,
weights on the meta device where only shapes are needed, every pretrained-weights argument off."""

from __future__ import annotations

import inspect
import json
import socket
from pathlib import Path
from typing import Any, NoReturn

import pytest
import torch
from torch import nn

from torchscan.cli import main
from torchscan.errors import TorchscanError
from torchscan.loader import (
    default_call,
    default_input_shapes,
    default_inputs,
    is_saved_model,
    load_model,
    meta_weights,
    torchvision_builder_arguments,
)

torchvision = pytest.importorskip("torchvision")
models = torchvision.models


class NetworkBlocked(AssertionError):
    """Raised by any attempt to open a connection while :func:`offline` holds."""


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No socket may connect or resolve a name, and torch's weight cache is empty: any download fails loudly."""

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise NetworkBlocked(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no cached checkpoint to fall back on
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_network_block_works(offline: None) -> None:
    """The guard itself: a builder asked for pretrained weights fails on the blocked socket."""
    with pytest.raises(Exception) as raised:  # any error, as long as the socket was refused (below)
        models.get_model("squeezenet1_1", weights="DEFAULT")
    chain: BaseException | None = raised.value
    while chain is not None and not isinstance(chain, NetworkBlocked):
        chain = chain.__cause__ or chain.__context__
    assert isinstance(chain, NetworkBlocked)


def _weights_parameters(name: str) -> set[str]:
    return {p for p in inspect.signature(models.get_model_builder(name)).parameters if "weights" in p}


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn", "deeplabv3_resnet50", "raft_small", "resnet18"])
def test_every_weights_argument_of_the_signature_is_off(name: str) -> None:
    arguments = torchvision_builder_arguments(name)
    assert set(arguments) == _weights_parameters(name) and set(arguments.values()) == {None}
    assert "weights" in arguments
    if name != "resnet18" and name != "raft_small":
        assert "weights_backbone" in arguments  # the argument that used to download ImageNet weights


def test_weights_are_meta_tensors_unless_asked(offline: None) -> None:
    model = load_model("vit_h_14")  # 632M parameters, 2.4 GiB as real weights
    assert all(p.device.type == "meta" for p in model.parameters()) and not model.training
    assert sum(p.numel() for p in model.parameters()) == 632_045_800
    real = load_model("resnet18", meta=False)
    assert all(p.device.type == "cpu" for p in real.parameters())


def test_a_builder_that_computes_with_tensors_still_gets_meta_weights(offline: None) -> None:
    """RegNet computes its widths with torch.arange(...).tolist(): `with torch.device("meta")` breaks it,
    the registration hooks do not."""
    with pytest.raises(NotImplementedError), torch.device("meta"):
        models.regnet_y_400mf()
    model = load_model("regnet_y_400mf")
    assert {t.device.type for t in (*model.parameters(), *model.buffers())} == {"meta"}


def test_a_layer_too_large_for_the_machine_is_built_on_meta_weights() -> None:
    """A layer allocates its weights with ``torch.empty`` before registering them: a 64 GiB embedding (a
    4M-token vocabulary of 4,096 dims) failed to allocate, before its registration could move it to meta
    (84 Hugging Face architectures at their default configurations under the zoo's memory limit: Cohere,
    DeepSeek-V3, Gemma-3n…). ``torch.empty`` makes meta tensors while the weights are made; other factories
    are as they are (a builder computing its configuration with them still works)."""
    with meta_weights():
        embedding = nn.Embedding(2**22, 2**12)
        schedule = torch.linspace(0, 0.1, 4).tolist()  # a drop-path schedule, read as numbers
    assert embedding.weight.device.type == "meta" and schedule[-1] == pytest.approx(0.1)
    assert torch.empty(2).device.type == "cpu"


def test_meta_weights_hooks_are_removed_after() -> None:
    with meta_weights():
        inside = nn.Linear(2, 3)
    outside = nn.Linear(2, 3)
    assert inside.weight.device.type == "meta" and inside.weight.requires_grad
    assert outside.weight.device.type == "cpu"


def test_a_factory_that_reads_its_weights_is_built_again_with_real_ones(tmp_path: Path) -> None:
    path = tmp_path / "reads.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make():\n"
        "    model = nn.Linear(4, 2)\n"
        "    assert float(model.weight.detach().abs().sum()) >= 0  # reads values: impossible on meta\n"
        "    return model\n"
    )
    model = load_model(f"{path}:make")
    assert model.weight.device.type == "cpu"


def test_a_factory_error_is_not_retried_unless_meta_caused_it(tmp_path: Path) -> None:
    path = tmp_path / "fails.py"
    path.write_text(
        "calls = []\n\n\ndef make():\n    calls.append(1)\n    raise ValueError(f'metadata, call {len(calls)}')\n"
    )
    with pytest.raises(TorchscanError, match="metadata, call 1"):  # "metadata" is not about meta tensors
        load_model(f"{path}:make")


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(TorchscanError, match=r"unknown model 'resnt50'\. Did you mean resnet50"):
        load_model("resnt50")
    with pytest.raises(TorchscanError, match=r"See torchvision\.models\.list_models\(\)"):
        load_model("qqqqqqqq")
    pytest.importorskip("timm")
    with pytest.raises(TorchscanError, match=r"unknown model 'resnet_18'\. Did you mean resnet18"):
        load_model("timm:resnet_18")


def test_timm_models_build_offline_on_meta(offline: None) -> None:
    pytest.importorskip("timm")
    model = load_model("timm:resnet18")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_default_input_shapes_follow_the_model_family() -> None:
    assert default_input_shapes("resnet18") == ((3, 224, 224),)
    assert default_input_shapes("r3d_18") == ((3, 16, 112, 112),)  # its weights' crop size
    assert default_input_shapes("mvit_v2_s") == ((3, 16, 224, 224),)
    assert default_input_shapes("raft_small") == ((3, 224, 224), (3, 224, 224))
    assert default_input_shapes("timm:resnet18") == ((3, 224, 224),)


def _analysed(capsys: pytest.CaptureFixture[str], name: str, *flags: str) -> dict[str, Any]:
    status = main([name, "--format", "json", "-q", *flags])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


FAST = [
    ("resnet18", "classification", "torch.fx"),
    ("regnet_x_400mf", "classification", "torch.fx"),
    ("lraspp_mobilenet_v3_large", "segmentation", "torch.fx"),
    ("r3d_18", "video", "torch.fx"),
    ("raft_small", "optical flow", "torch.fx"),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "detection", "real-forward"),
]


@pytest.mark.parametrize(("name", "family", "capture"), FAST, ids=[name for name, _, _ in FAST])
def test_torchvision_families_offline(
    name: str, family: str, capture: str, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _analysed(capsys, name)
    assert data["context"]["capture"] == capture
    assert data["totals"]["params"] == sum(p.numel() for p in load_model(name).parameters())
    assert data["totals"]["complete"] and data["totals"]["flops"] > 0
    # meta weights where only shapes are needed; real ones where only a real forward can capture the model
    assert (data["context"]["device"] == "meta") == (capture != "real-forward")


@pytest.mark.slow
@pytest.mark.parametrize("name", models.list_models())
def test_every_torchvision_model_offline(name: str, offline: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Every ``torchvision.models.list_models()`` name through the command: built without a download and
    analysed (detection models by one real forward on random weights: the ResNet-50 ones estimate up to 2.7 GiB,
    over the 2 GiB default, hence the limit)."""
    data = _analysed(capsys, name, "--real-forward-limit", "4GiB")
    assert data["totals"]["params"] > 0 and data["totals"]["flops"] > 0
    assert data["totals"]["complete"], [d["message"] for d in data["diagnostics"]]


def test_a_hugging_face_architecture_is_built_offline_on_meta_weights(offline: None) -> None:
    """``hf:MODEL_TYPE,key=value``: the configuration's architecture, nothing fetched (the socket is blocked), its
    weights on meta; its default inputs by keyword (token ids; an encoder-decoder's decoder ids second)."""
    pytest.importorskip("transformers")
    model = load_model("hf:gpt2,n_layer=1,n_embd=32,n_head=2")
    assert type(model).__name__ == "GPT2Model" and not model.training
    assert {tensor.device.type for tensor in model.parameters()} == {"meta"}
    assert default_inputs("hf:gpt2") == (("input_ids", (128,), "int64"),)
    assert [name for name, _, _ in default_inputs("hf:t5,num_layers=1")] == ["input_ids", "decoder_input_ids"]
    assert default_inputs("resnet18") == ((None, (3, 224, 224), None),)
    # two modalities: the other one's input too, text no longer than the text configuration's positions
    assert default_inputs("hf:clip") == (("input_ids", (77,), "int64"), ("pixel_values", (3, 224, 224), "float32"))
    assert default_inputs('hf:clip,vision_config={"image_size":64}')[1] == ("pixel_values", (3, 64, 64), "float32")
    with pytest.raises(TorchscanError, match="hf:no_such_type"):
        load_model("hf:no_such_type")


class _Saved(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4))
        self.head = nn.Linear(8 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated
@pytest.mark.parametrize("kind", ["script", "trace", "export"])
def test_a_saved_model_file_is_loaded_and_analysed(
    kind: str, tmp_path: Path, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``torchscan model.pt``: a TorchScript archive (scripted or traced: its weights on ``meta``, as a built model's)
    or an exported program (on the CPU), told by the archive's entries whatever the suffix, analysed as the plain
    model is."""
    model, sample = _Saved().eval(), torch.randn(1, 3, 16, 16)
    path = tmp_path / ("model.pt2" if kind == "export" else "model.pt")
    if kind == "export":
        torch.export.save(torch.export.export(model, (sample,)), path)
    else:
        torch.jit.save(torch.jit.script(model) if kind == "script" else torch.jit.trace(model, sample), path)
    loaded = load_model(str(path))
    assert not isinstance(loaded, _Saved)
    devices = {tensor.device.type for tensor in loaded.parameters()}
    assert devices == ({"cpu"} if kind == "export" else {"meta"})  # no weight read into memory where torch maps
    assert {tensor.device.type for tensor in load_model(str(path), meta=False).parameters()} == {"cpu"}
    status = main([str(path), "--input-shape", "3", "16", "16", "--format", "json", "-q"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    from torchscan import crawl_module

    plain = crawl_module(model, (3, 16, 16)).totals
    counts = ("params", "flops", "macs", "dmas")
    assert [report["totals"][name] for name in counts] == [getattr(plain, name) for name in counts]


def test_an_exported_program_is_analysed_at_its_own_inputs_by_default(
    tmp_path: Path, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exported program's shapes are fixed (another fails its guards): without ``--input-shape`` and
    ``--batch-size`` the command line takes the program's own, batch and dtype included (the default 3×224×224 at
    batch 1 failed with the program's guard)."""
    model = _Saved().eval()
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(2, 3, 16, 16),)), path)
    assert default_call(str(path)) == (((None, (3, 16, 16), None),), 2) == (default_inputs(str(path)), 2)
    status = main([str(path), "--format", "json", "-q"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["context"]["input_shapes"] == [[2, 3, 16, 16]]
    from torchscan import crawl_module

    plain = crawl_module(model, (3, 16, 16), batch_size=2).totals
    counts = ("params", "flops", "macs", "dmas")
    assert [report["totals"][name] for name in counts] == [getattr(plain, name) for name in counts]
    tokens = tmp_path / "tokens.pt2"
    embedding = torch.nn.Embedding(10, 4)
    torch.export.save(torch.export.export(embedding, (torch.zeros(3, 5, dtype=torch.long),)), tokens)
    assert default_call(str(tokens)) == (((None, (5,), "int64"),), 3)
    assert default_call("resnet50")[1] == 1 and default_call(str(tmp_path / "missing.pt2"))[1] == 1


def test_an_exported_programs_own_hooks_are_no_ignored_user_hooks_and_its_guards_say_what_to_do() -> None:
    """``ExportedProgram.module()`` registers torch.export's own hooks (module-typed inputs' bookkeeping, an input
    check the graph's ``_guards_fn`` makes too): they were reported as 3 user hooks not run, a warning that the
    report may differ; a user's hook on that module still is. A shape the guards refuse says what to do."""
    from torchscan import ShapeError, crawl_module

    module = torch.export.export(_Saved().eval(), (torch.randn(1, 3, 16, 16),)).module()
    report = crawl_module(module, (3, 16, 16))
    assert "hooks-ignored" not in {note.code for note in report.diagnostics}
    module.register_forward_hook(lambda *args: None)
    notes = [note.message for note in crawl_module(module, (3, 16, 16)).diagnostics if note.code == "hooks-ignored"]
    assert len(notes) == 1 and notes[0].startswith("1 user hook(s) were not run")
    with pytest.raises(ShapeError, match=r"Guard failed.*\n  hint: an exported program holds for the input shapes"):
        crawl_module(module, (3, 8, 8))


def test_a_file_that_holds_no_model_is_refused_with_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state dict holds no architecture; loading a pickled module would run code from the file (never done); a
    file that is no archive, or no file at all: each a :class:`TorchscanError` that says so."""
    model = _Saved()
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    torch.save(model, tmp_path / "pickled.pth")
    (tmp_path / "notes.pt").write_text("not a model", encoding="utf-8")
    cases = {
        "weights.pth": r"holds a state dict \(weights without an architecture\).*file\.py:factory",
        "pickled.pth": r"pickled object.*would run code from the file.*torch\.jit\.save or torch\.export\.save",
        "notes.pt": r"not a saved model \(not a zip archive",
        "missing.pt": r"no such file",
    }
    for name, message in cases.items():
        with pytest.raises(TorchscanError, match=message):
            load_model(str(tmp_path / name))
    assert is_saved_model(str(tmp_path / "notes.pt")) and is_saved_model("model.pt2")
    import torchscan.loader as loader

    def no_torchvision() -> NoReturn:
        raise TorchscanError("torchvision is not installed")

    monkeypatch.setattr(loader, "_torchvision", no_torchvision)  # a saved model needs no torchvision
    assert default_input_shapes("model.pt2") == ((3, 224, 224),)
    assert not is_saved_model("resnet50") and not is_saved_model(f"{tmp_path / 'models.py'}:build")
