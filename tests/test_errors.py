"""torchscan's errors pickle and copy as themselves: a process pool sends a worker's error back pickled."""

from __future__ import annotations

import concurrent.futures
import copy
import multiprocessing
import pickle

import pytest
from torch import nn

import torchscan.graph.record
import torchscan.graph.rejected
import torchscan.render.dot
from torchscan import crawl_module
from torchscan.errors import CaptureError, InputError, ShapeError, TorchscanError

EXAMPLES: list[TorchscanError] = [
    TorchscanError("base"),
    InputError("bad input"),
    CaptureError("no capture"),
    ShapeError("rejected", node="conv", module_path="body.0", input_shapes=((1, 4, 8, 8),)),
    torchscan.graph.rejected.RejectedByModel("the model's check", ((1, 3, 16, 16),)),
    torchscan.graph.record.NeedsValues("values needed", 1024),
    torchscan.render.dot.GraphvizNotFoundError("no dot"),
]


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_error_class_is_among_the_examples() -> None:
    assert _subclasses(TorchscanError) | {TorchscanError} == {type(error) for error in EXAMPLES}


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda error: type(error).__name__)
def test_an_error_pickles_and_copies_as_itself(error: TorchscanError) -> None:
    """A class whose ``__init__`` takes more than the message (``ShapeError``'s node and shapes) did not unpickle."""
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(again) is type(error) and str(again) == str(error) and again.args == error.args
        assert vars(again) == vars(error)


def _analysed(shape: tuple[int, ...]) -> int:
    return crawl_module(nn.Sequential(nn.Conv2d(3, 4, 3)), shape).totals.macs


def test_a_process_pool_gets_the_error_of_one_item_and_the_others_results() -> None:
    """One input the model rejects broke a ``ProcessPoolExecutor`` (``BrokenProcessPool`` for every item: the
    worker's ShapeError did not unpickle in the parent)."""
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        good, bad, again = (pool.submit(_analysed, shape) for shape in [(3, 8, 8), (4, 8, 8), (3, 6, 6)])
        assert good.result(timeout=120) == 4 * 3 * 9 * 36
        with pytest.raises(ShapeError, match=r"layer '0' \(Conv2d") as caught:
            bad.result(timeout=120)
        assert caught.value.input_shapes == ((1, 4, 8, 8),) and caught.value.module_path == "0"
        assert again.result(timeout=120) == 4 * 3 * 9 * 16


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda error: type(error).__name__)
def test_context_said_first_keeps_the_class_and_attributes(error: TorchscanError) -> None:
    told = error.said_first("at N=1: ")
    assert type(told) is type(error) and str(told) == "at N=1: " + str(error)
    assert {key: value for key, value in vars(told).items() if key != "message"} == {
        key: value for key, value in vars(error).items() if key != "message"
    }
    assert getattr(told, "message", str(told)) == str(told)
