"""One job in this process: a row per input set, a model per dtype, Hugging Face configs, errors as rows."""

from __future__ import annotations

import pytest
import torch

from tests.zoo.conftest import spec
from torchscan import TensorSpec, crawl_module
from torchscan.errors import TorchscanError
from torchscan.loader import load_model
from torchscan.zoo.analyse import analyse_job, memory_refused
from torchscan.zoo.records import Settings
from torchscan.zoo.specs import jobs


def test_each_input_set_gets_its_row_and_each_dtype_its_model() -> None:
    (job,) = jobs([f"{spec('halves')} 3x16x16:float16", f"{spec('halves')} 3x16x16", f"{spec('halves')} 3x9x9:float16"])
    rows = list(analyse_job(job, Settings()))
    assert [row.input for row in rows] == ["1x3x16x16:float16", "1x3x16x16", "1x3x9x9:float16"]
    for row, (shape, dtype) in zip(
        rows, [((3, 16, 16), torch.float16), ((3, 16, 16), None), ((3, 9, 9), torch.float16)], strict=True
    ):
        model = load_model(spec("halves"))
        report = crawl_module(model if dtype is None else model.to(dtype), shape, dtype=dtype)
        assert (row.flops, row.activation_peak_bytes, row.model_bytes) == (
            report.totals.flops,
            report.memory.activation_peak_bytes,
            report.totals.model_bytes,
        )
    assert rows[0].model_bytes == rows[1].model_bytes // 2  # float16 weights


def test_a_model_that_cannot_be_built_fails_every_row() -> None:
    (job,) = jobs([spec("raises")], sizes=[8, 16])
    rows = list(analyse_job(job, Settings()))
    assert [(row.status, row.error_type) for row in rows] == [("failed", "TorchscanError")] * 2
    assert "this factory refuses" in (rows[0].error or "")


def test_a_shape_error_is_a_row_not_an_exception() -> None:
    (job,) = jobs([f"{spec('mlp')} 15", f"{spec('mlp')} 16"])
    rows = list(analyse_job(job, Settings()))
    assert [(row.status, row.error_type) for row in rows] == [("failed", "ShapeError"), ("ok", None)]


def test_hugging_face_configs_build_offline() -> None:
    transformers = pytest.importorskip("transformers")
    (job,) = jobs(["hf:gpt2,n_layer=1,n_embd=32,n_head=2"], sizes=[16])
    (row,) = analyse_job(job, Settings())
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2)
    report = crawl_module(transformers.GPT2Model(config).eval(), kwargs={"input_ids": TensorSpec((1, 16), torch.long)})
    assert (row.status, row.input, row.model) == ("ok", "input_ids=1x16:int64", "GPT2Model")
    assert (row.params, row.flops, row.macs, row.dmas) == (
        report.totals.params,
        report.totals.flops,
        report.totals.macs,
        report.totals.dmas,
    )
    with pytest.raises(TorchscanError, match="no_such_type"):
        jobs(["hf:no_such_type"])


def test_refused_allocations_are_recognised_through_the_chain() -> None:
    try:
        try:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes")
        except RuntimeError as error:
            raise TorchscanError("factory raised RuntimeError") from error
    except TorchscanError as error:
        assert memory_refused(error)
    assert memory_refused(MemoryError())
    assert not memory_refused(ValueError("shape mismatch"))


def test_several_sizes_share_one_sweep_with_the_rows_of_separate_analyses() -> None:
    (job,) = jobs([spec("cnn")], sizes=[16, 32, 48], batch_sizes=[1, 4])
    together = list(analyse_job(job, Settings(), together=True))
    apart = list(analyse_job(job, Settings(), together=False))
    assert len(together) == 6 and all(row.ok for row in together)
    assert together == apart  # every field but the timings
    assert len({row.analysis_seconds for row in together}) == 1  # the sweep's time, shared


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (Settings(real_forward=False), "--no-real-forward forbids it"),
        (Settings(real_forward_limit=64), "nothing was built"),
    ],
)
def test_a_real_forward_the_policy_refuses_builds_no_real_weights(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, reason: str
) -> None:
    """As the command line: a model only a real forward captures was built again with real random weights whatever
    the policy (84 Hugging Face vision-language models hit the zoo's memory limit so, a 72 B Qwen2.5-VL among
    them); the row now says why nothing was built."""
    import torchscan.zoo.analyse as analyse

    built: list[bool] = []
    real = analyse.build_model

    def build(target: str, meta: bool = True) -> torch.nn.Module:
        built.append(meta)
        return real(target, meta=meta)

    monkeypatch.setattr(analyse, "build_model", build)
    (job,) = jobs([f"{spec('value_branch')} 8"])
    (row,) = analyse_job(job, settings)
    assert (row.status, row.error_type) == ("failed", "CaptureError") and reason in (row.error or "")
    assert built == [True]
    (row,) = analyse_job(job, Settings())
    assert row.status == "ok" and row.capture == "real-forward" and built == [True, True, False]
