"""The command's options: --version, --help examples, --max-depth 0, did you mean, several inputs with a
dtype each, --dtype float16 casting the model, --columns, meta weights, progress on a terminal only."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import torchscan
import torchscan.cli
from torchscan.cli import main

_MODELS = """
import torch
from torch import nn


def small():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


class Selecting(nn.Module):
    '''Keeps the positive features: an output size only data decides (a real forward captures it).'''

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 64)

    def forward(self, x):
        y = self.fc(x)
        return y[y > 0].sum()


def selecting():
    with open(__file__ + ".built", "a") as built:  # one line per build (the file is imported again for each)
        built.write("built\\n")
    return Selecting()


class ImageAndText(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.embed = nn.Embedding(100, 8)

    def forward(self, image, ids):
        return self.conv(image).mean((2, 3)) + self.embed(ids).mean(1)


def image_and_text():
    return ImageAndText()


class Tokens(nn.Module):
    '''A BERT-like call: token ids and an attention mask, both integer tensors.'''

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 32)
        self.attention = nn.MultiheadAttention(32, 4, batch_first=True)

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        return self.attention(x, x, x, key_padding_mask=attention_mask == 0, need_weights=False)[0]


def tokens():
    return Tokens()


def slow():
    import time

    time.sleep(0.3)
    return small()
"""


@pytest.fixture
def models(tmp_path: Path) -> Path:
    path = tmp_path / "cli_models.py"
    path.write_text(_MODELS, encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    status, out, err = _run(capsys, *argv, "--format", "json", "-q")
    assert status == 0, err
    return json.loads(out)


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"torchscan {torchscan.__version__} (torch {torch.__version__}")


@pytest.mark.parametrize(
    ("argv", "examples"),
    [
        (["--help"], ["torchscan resnet50 --max-depth 0", "--input-shape 128 --dtype long", "torchscan diff resnet18"]),
        (["diff", "--help"], ["torchscan diff resnet18 resnet34 --max-depth 1", "--changed-only"]),
    ],
)
def test_help_shows_examples(argv: list[str], examples: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    out = capsys.readouterr().out
    assert "examples:" in out
    for example in examples:
        assert example in out


def test_max_depth_zero_is_totals_only(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "resnet18", "--max-depth", "0", "-q")
    assert status == 0
    lines = out.splitlines()
    header_rule, closing_rule = [index for index, line in enumerate(lines) if line.startswith("=")][:2]
    assert closing_rule - header_rule == 2  # one line between the rules: the model's own
    assert lines[header_rule + 1].split()[:2] == ["ResNet", "ResNet"] and "11,689,512" in lines[header_rule + 1]
    assert "Total params: 11,689,512" in out and "├─" not in out
    assert _json(capsys, "resnet18", "--max-depth", "0")["layers"] == []


def test_negative_max_depth_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--max-depth must be 0 (totals only) or more" in _usage_error(capsys, "resnet18", "--max-depth", "-1")


def test_a_typo_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "resnet5O", "-q")
    assert status == 2 and out == ""
    assert err.startswith("torchscan: error: unknown model 'resnet5O'. Did you mean resnet50")
    status, _, err = _run(capsys, "mobilenet_v3", "-q")
    assert status == 2 and "mobilenet_v3_large" in err and "mobilenet_v3_small" in err


def test_several_inputs_with_a_dtype_each(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{models}:image_and_text"
    data = _json(
        capsys, spec, "--input-shape", "3", "16", "16", "--input-shape", "7", "--dtype", "float32", "--dtype", "long"
    )
    assert data["context"]["input_shapes"] == [[1, 3, 16, 16], [1, 7]]
    assert data["context"]["dtypes"] == ["float32", "int64"]
    assert data["context"]["output_shapes"] == [[1, 8]]
    again = _json(
        capsys, spec, "--input-shape", "3,16,16", "--input-shape", "7", "--dtype", "float32", "--dtype", "long"
    )
    assert again["totals"] == data["totals"]  # 3,16,16 is 3 16 16


def test_token_ids_and_a_mask(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--input-shape 128 --input-shape 128 --dtype long``: one dtype for every input."""
    data = _json(capsys, f"{models}:tokens", "--input-shape", "128", "--input-shape", "128", "--dtype", "long")
    assert data["context"]["dtypes"] == ["int64", "int64"] and data["context"]["input_shapes"] == [[1, 128]] * 2
    assert data["context"]["output_shapes"] == [[1, 128, 32]] and data["totals"]["complete"]


_BERT = "hf:bert,num_hidden_layers=2,hidden_size=64,num_attention_heads=4,intermediate_size=128"
_T5 = "hf:t5,num_layers=1,d_model=64,d_ff=128,num_heads=4,d_kv=16"


def test_a_hugging_face_architecture_gets_its_token_ids_by_keyword(capsys: pytest.CaptureFixture[str]) -> None:
    """``hf:MODEL_TYPE[,key=value...]`` (as the zoo spells it): the architecture from its configuration, nothing
    downloaded, called with its inputs by keyword: 128 int64 token ids by default, ``--input-shape`` in the
    order of its inputs (an encoder-decoder's ``decoder_input_ids`` second); ``--measure`` calls it so too."""
    pytest.importorskip("transformers")
    data = _json(capsys, _BERT)
    assert data["context"]["model"] == "BertModel" and data["totals"]["complete"]
    assert data["context"]["input_shapes"] == [[1, 128]] and data["context"]["dtypes"] == ["int64"]
    assert data["context"]["capture"] == "torch.fx"
    longer = _json(capsys, _BERT, "--input-shape", "256", "--batch-size", "2")
    assert longer["context"]["input_shapes"] == [[2, 256]] and longer["totals"]["macs"] > 4 * data["totals"]["macs"]
    pair = _json(capsys, _T5, "--input-shape", "32", "--input-shape", "8", "--batch-size", "2")
    assert pair["context"]["input_shapes"] == [[2, 32], [2, 8]] and pair["context"]["output_shapes"][0] == [2, 8, 64]
    status, _, err = _run(capsys, _BERT, "--input-shape", "8", "--input-shape", "8", "-q")
    assert status == 2 and "2 --input-shape for hf:bert" in err and "takes 1 input(s): input_ids" in err
    small = '{"num_hidden_layers":1,"hidden_size":32,"intermediate_size":64,"num_attention_heads":2'
    clip = f'hf:clip,text_config={small}}},vision_config={small},"image_size":32,"patch_size":8}},projection_dim=16'
    both = _json(capsys, clip)  # two modalities: token ids (77: CLIP's positions) and an image, by keyword
    assert both["context"]["input_shapes"] == [[1, 77], [1, 3, 32, 32]] and both["context"]["capture"] == "torch.fx"
    measured = _json(capsys, _T5, "--measure", "cpu")["memory"]["measured"]  # refused before: called by keyword now
    assert measured["available"] and measured["activation_peak_bytes"] == measured["static_activation_peak_bytes"]
    assert all(abs(step["measured_bytes"] - step["static_bytes"]) == 8 for step in measured["training"])  # the loss
    status, _, err = _run(capsys, "hf:no_such_type", "-q")
    assert status == 2 and "hf:no_such_type" in err


def test_dtype_count_must_fit_the_inputs(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--input-shape", "3", "8", "8", "--input-shape", "7", "-q"]
    status, _, err = _run(
        capsys, f"{models}:image_and_text", *argv, "--dtype", "long", "--dtype", "long", "--dtype", "long"
    )
    assert status == 2 and "3 --dtype for 2 input(s)" in err
    status, _, err = _run(capsys, f"{models}:image_and_text", *argv, "--dtype", "float16", "--dtype", "float32")
    assert status == 2 and "one float dtype per model" in err and "float16, float32" in err


def test_bad_dims_are_usage_errors(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid dims '3,2.5'" in _usage_error(capsys, f"{models}:small", "--input-shape", "3,2.5")
    assert "invalid dims '3,H%0'" in _usage_error(capsys, f"{models}:small", "--input-shape", "3,H%0")
    assert "invalid batch size" in _usage_error(capsys, f"{models}:small", "--batch-size", "2x")


def _conv(models: Path) -> str:
    """A model whose every size works: a 3x3 convolution with padding and a global pool."""
    path = models.parent / "conv_models.py"
    path.write_text(
        "from torch import nn\n\n\ndef conv():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))\n",
        encoding="utf-8",
    )
    return f"{path}:conv"


def test_named_sizes_give_formulas_and_a_fit(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _conv(models)
    status, out, err = _run(capsys, spec, "--input-shape", "3", "H", "H", "--batch-size", "B", "-q")
    assert status == 0, err
    assert "flops    " in out and "*B*H**2" in out and "conditions:" in out
    args = ("--input-shape", "3,H,H", "--batch-size", "B", "--fit", "B", "--memory", "64MiB", "--at", "H=64", "-q")
    status, out, err = _run(capsys, spec, *args, "--optimizer", "sgd")
    assert status == 0, err
    fit_line = out.splitlines()[-1]
    value = int(fit_line.split("B=")[1].split(" ")[0])
    from torchscan import crawl_module  # the answer fits; the next batch does not
    from torchscan.loader import load_model

    model = load_model(spec)
    peak = lambda b: crawl_module(model, (3, 64, 64), batch_size=b).memory.training_for("sgd").peak_bytes  # noqa: E731
    assert peak(value) <= 64 * 2**20 < peak(value + 1)
    data = _json(capsys, spec, "--input-shape", "3", "H%4", "H%4", "--batch-size", "B")
    macs = crawl_module(model, (3, 8, 8), batch_size=3).totals.macs  # 224·B·H² + 8·B at B = 3, H = 8
    assert data["formulas"]["totals.macs"] == "224*B*H**2 + 8*B" and macs == 224 * 3 * 64 + 8 * 3
    assert data["dims"][1]["multiple_of"] == 4
    assert "--fit needs --memory" in _usage_error(capsys, spec, "--input-shape", "3,H,H", "--fit", "H")
    status, _, err = _run(capsys, spec, "--input-shape", "3", "H", "H", "--format", "csv", "-q")
    assert status == 2 and "named sizes is table, json or html" in err


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_a_float_dtype_casts_the_model(dtype: str, models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An fp16 model, not fp16 activations next to fp32 weights: parameters take the dtype's bytes."""
    data = _json(capsys, f"{models}:small", "--input-shape", "3", "8", "8", "--dtype", dtype)
    itemsize = getattr(torch, dtype).itemsize
    assert data["context"]["dtypes"] == [dtype]
    assert data["totals"]["param_bytes"] == data["totals"]["params"] * itemsize
    assert data["layers"][0]["output_bytes"] == 4 * 6 * 6 * itemsize


def test_the_cast_model_is_the_one_analysed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}
    real = torchscan.cli.crawl_module

    def crawl(model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        seen["dtypes"] = {p.dtype for p in model.parameters()} | {
            b.dtype for b in model.buffers() if b.is_floating_point()
        }
        seen["devices"] = {p.device.type for p in model.parameters()}
        return real(model, *args, **kwargs)

    monkeypatch.setattr(torchscan.cli, "crawl_module", crawl)
    assert main(["resnet18", "--dtype", "float16", "-q", "--max-depth", "0"]) == 0
    assert seen == {"dtypes": {torch.float16}, "devices": {"meta"}}
    assert "Model size (params + buffers): 22.3 MiB" in capsys.readouterr().out  # half of 44.6 MiB


def test_integer_dtypes_leave_the_model_as_is(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, f"{models}:tokens", "--input-shape", "16", "--input-shape", "16", "--dtype", "long")
    assert data["totals"]["param_bytes"] == data["totals"]["params"] * 4


def test_measure_without_cuda_keeps_meta_weights(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Real weights only where a measurement will run: without CUDA, --measure only says so."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    devices: set[str] = set()
    real = torchscan.cli.crawl_module

    def crawl(model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        devices.update(p.device.type for p in model.parameters())
        return real(model, *args, **kwargs)

    monkeypatch.setattr(torchscan.cli, "crawl_module", crawl)
    status, out, _ = _run(capsys, "resnet18", "--measure", "--max-depth", "0", "-q")
    assert status == 0 and devices == {"meta"} and "Measured: no CUDA device" in out


def test_columns(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "resnet18", "--columns", "flops,macs,kernel", "--max-depth", "1", "-q")
    assert status == 0
    header = next(line for line in out.splitlines() if line.startswith("Layer"))
    assert re.split(r" {2,}", header.strip()) == ["Layer", "FLOPs", "MACs", "Kernel"]
    assert re.search(r"conv1\s+\S+\s+\S+\s+7x7", out)
    status, out, _ = _run(capsys, "resnet18", "--columns", "all", "--max-depth", "1", "-q")
    header = next(line for line in out.splitlines() if line.startswith("Layer"))
    for title in ("Type", "Output Shape", "Param #", "FLOPs %", "Output Bytes", "Calls"):
        assert title in out  # the table may continue in blocks: every column is somewhere
    assert header.startswith("Layer")


def test_columns_naming_the_receptive_field_computes_it(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "resnet18", "--columns", "params,receptive_field", "--max-depth", "1", "-q")
    assert status == 0 and "435x435" in out


def test_bad_columns(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "resnet18", "--columns", "flop", "-q")
    assert status == 2 and out == "" and "unknown column 'flop' (did you mean 'flops'?)" in err
    assert "does not apply to --format csv" in _usage_error(capsys, "resnet18", "--columns", "all", "--format", "csv")


def test_models_are_analysed_on_meta_weights(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    devices: list[set[str]] = []
    real = torchscan.cli.crawl_module

    def crawl(model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        devices.append({t.device.type for t in (*model.parameters(), *model.buffers())})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(torchscan.cli, "crawl_module", crawl)
    assert _json(capsys, "resnet50")["context"]["device"] == "meta"
    assert devices == [{"meta"}]


def test_a_real_forward_the_policy_refuses_builds_no_real_weights(models: Path, capsys) -> None:
    """A model only a real forward captures is built again with real weights, unless the real forward would be
    refused whatever else: forbidden (``--no-real-forward``), or its weights alone above ``--real-forward-limit``
    (a 7 B-parameter LLaVA was built in 26 GiB before its forward was refused). The error says why."""
    built = Path(f"{models}.built")

    def builds() -> int:
        count = len(built.read_text().splitlines())
        built.unlink()
        return count

    status, out, err = _run(capsys, f"{models}:selecting", "--input-shape", "64", "-q")
    assert status == 0 and "real-forward" in out and builds() == 2  # allowed: built again, a real forward
    status, _, err = _run(capsys, f"{models}:selecting", "--input-shape", "64", "--real-forward-limit", "10KiB", "-q")
    assert status == 2 and "parameters and buffers alone take 16.2 KiB" in err and "nothing was built" in err
    assert builds() == 1
    status, _, err = _run(capsys, f"{models}:selecting", "--input-shape", "64", "--no-real-forward", "-q")
    assert status == 2 and "--no-real-forward forbids it" in err and builds() == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch: pytest.MonkeyPatch) -> _Terminal:
    """stderr as a terminal, progress from the first moment on (set in the test's body: capsys installs its
    own stderr when the test starts)."""
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(torchscan.cli, "_PROGRESS_DELAY", 0.0)
    return stream


def test_progress_on_a_terminal(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _terminal(monkeypatch)
    output = models.with_name("out.txt")
    assert main([f"{models}:slow", "--input-shape", "3", "8", "8", "-o", str(output)]) == 0
    shown = terminal.getvalue()
    for number, stage in enumerate((f"building {models}:slow", f"analysing {models}:slow", "rendering table")):
        assert f"\rtorchscan: {stage} [{number}/3, 00:0" in shown  # each stage as it starts
    assert shown.endswith("\n") and shown.count("\n") == 1  # progress rewrites one line, then the closing line
    final = shown.rstrip("\n").split("\r")[-1]  # what the terminal shows last: the progress line was cleared
    assert re.fullmatch(rf"torchscan: table written to {re.escape(str(output))} in \d+\.\d s", final)
    assert "Total params: 402" in output.read_text()


def test_quiet_on_a_terminal(models: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    terminal = _terminal(monkeypatch)
    assert main([f"{models}:slow", "--input-shape", "3", "8", "8", "-q"]) == 0
    assert terminal.getvalue() == ""
    assert "Total params: 402" in capsys.readouterr().out


def test_no_progress_when_stderr_is_not_a_terminal(models: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torchscan.cli, "_PROGRESS_DELAY", 0.0)
    status, out, err = _run(capsys, f"{models}:slow", "--input-shape", "3", "8", "8")
    assert status == 0 and err == "" and "Total params: 402" in out


def test_diff_prints_a_readable_per_row_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "diff", "resnet18", "resnet34", "--max-depth", "2", "-q")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "A: resnet18 (ResNet, input (1, 3, 224, 224) float32)"
    assert lines[1] == "B: resnet34 (ResNet, input (1, 3, 224, 224) float32)"
    assert re.search(r"^├─layer3\s+Sequential\s+2,099,712\s+6,822,400\s+\+4,722,688\s", out, re.M)
    assert re.search(r"^│    └─5\s+BasicBlock\s+-\s+1,180,672\s+\+1,180,672\s.*only in B$", out, re.M)
    assert sum(line.endswith("only in B") and "BasicBlock" in line for line in lines) == 8  # the blocks resnet34 adds
    assert re.search(r"^  Params:\s+11,689,512 → 21,797,672  \(\+10,108,160, \+86\.5%\)$", out, re.M)


def test_diff_totals_are_the_difference_of_the_two_reports(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _json(capsys, "resnet18"), _json(capsys, "resnet34")
    status, out, _ = _run(capsys, "diff", "resnet18", "resnet34", "--format", "json", "--max-depth", "1", "-q")
    data = json.loads(out)
    assert status == 0 and data["labels"] == {"a": "resnet18", "b": "resnet34"}
    for metric in ("params", "flops", "macs", "dmas"):
        assert data["totals"][metric] == {
            "a": a["totals"][metric],
            "b": b["totals"][metric],
            "delta": b["totals"][metric] - a["totals"][metric],
        }


def test_diff_options(models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "diff.csv"
    argv = ["diff", f"{models}:small", f"{models}:slow", "--input-shape", "3,8,8", "--format", "csv", "-o", str(output)]
    status, out, _ = _run(capsys, *argv, "-q")
    assert status == 0 and out == ""
    assert output.read_text().splitlines()[0].startswith("name,status,depth,parent,type_a,type_b,params_a")
    status, _, err = _run(capsys, "diff", "resnet18", "resnet34", "--metrics", "params,latency", "-q")
    assert status == 2 and "--metrics params,latency: choose from params, flops" in err
    status, _, err = _run(capsys, "diff", "resnet18", "resnt34", "-q")
    assert status == 2 and "Did you mean resnet34" in err
    assert "the following arguments are required: MODEL_B" in _usage_error(capsys, "diff", "resnet18")
    for sizes in (["--input-shape", "3", "H", "W"], ["--batch-size", "B"]):  # an internal error before (exit 1)
        status, _, err = _run(capsys, "diff", f"{models}:small", f"{models}:slow", *sizes, "-q")
        assert status == 2 and "torchscan diff compares two models at one size: give numbers, not the named" in err


def test_the_readmes_diff_example_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    command = "torchscan diff resnet18 resnet34 --max-depth 2 --changed-only"
    shown = readme.split(f"`{command}`", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    status, out, _ = _run(capsys, *command.split()[1:], "-q")
    assert status == 0 and out == shown


def test_all_rows_shows_the_bookkeeping_rows(capsys: pytest.CaptureFixture[str]) -> None:
    status, folded, _ = _run(capsys, "resnet18", "--max-depth", "1", "-q")
    assert status == 0 and "├─flatten" not in folded and "Folded: 1 bookkeeping row, " in folded
    status, everything, _ = _run(capsys, "resnet18", "--max-depth", "1", "--all-rows", "-q")
    assert status == 0 and "├─flatten" in everything and "Folded: " not in everything
    assert "does not apply to --format dot" in _usage_error(capsys, "resnet18", "--all-rows", "--format", "dot")
