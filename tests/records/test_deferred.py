"""A deferred value is computed once, by the first reader, in whichever thread; a record field declared
deferred reads as its value, and a copy of the record holds the value, never the function."""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
import threading
import weakref

import pytest

from torchscan.records.deferred import Deferred, deferred_field
from torchscan.records.frozen import frozen_record


@frozen_record
class _Holder:
    name: str
    value: int | None = deferred_field("A number.", default=None, compare=False)


class _Counted:
    """A function that counts its calls."""

    def __init__(self, answer: int) -> None:
        self.calls, self.answer = 0, answer

    def __call__(self) -> int:
        self.calls += 1
        return self.answer


def test_computed_once_for_every_thread() -> None:
    function = _Counted(42)
    deferred = Deferred(function)
    start = threading.Barrier(8)
    results: list[int] = []

    def read() -> None:
        start.wait()
        results.append(deferred.get())

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [42] * 8
    assert function.calls == 1


def test_an_error_is_raised_again_on_every_read_and_computed_once() -> None:
    calls = []

    def failing() -> int:
        calls.append(1)
        raise ValueError("no")

    deferred = Deferred(failing)
    for _ in range(2):
        with pytest.raises(ValueError, match="no"):
            deferred.get()
    assert len(calls) == 1


def test_an_interrupt_leaves_the_value_to_the_next_read() -> None:
    calls = []

    def interrupted_once() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return 4

    deferred = Deferred(interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        deferred.get()
    assert deferred.get() == 4 and deferred.get() == 4
    assert len(calls) == 2


def test_the_function_is_dropped_once_computed() -> None:
    function = _Counted(3)
    gone = weakref.ref(function)
    deferred = Deferred(function)
    del function
    assert deferred.get() == 3
    gc.collect()
    assert gone() is None


def test_a_deferred_field_reads_as_its_value_once_computed() -> None:
    function = _Counted(7)
    holder = _Holder("a", Deferred(function))
    assert holder.value == 7 and holder.value == 7
    assert function.calls == 1
    assert _Holder("a", 1) == _Holder("a", 2)  # compare=False as declared
    assert _Holder("b").value is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        holder.value = 3  # type: ignore[misc]


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, lambda held: pickle.loads(pickle.dumps(held))])
def test_a_copy_holds_the_value(duplicate: object) -> None:
    function = _Counted(5)
    holder = _Holder("a", Deferred(function))
    copied = duplicate(holder)  # type: ignore[operator]
    assert copied.value == 5 and holder.value == 5
    assert function.calls == 1
    assert pickle.loads(pickle.dumps(Deferred(_Counted(6)))).get() == 6


@frozen_record
class _Derived(_Holder):
    extra: int = 0


def test_a_derived_record_reads_the_field_as_its_base_does() -> None:
    function = _Counted(8)
    derived = _Derived("a", Deferred(function), 1)
    assert derived.value == 8 and derived.value == 8 and derived.extra == 1
    assert function.calls == 1


def test_the_field_reads_as_a_documented_property() -> None:
    assert isinstance(vars(_Holder)["value"], property) and _Holder.value.__doc__ == "A number."


def test_replace_keeps_or_overrides_the_field() -> None:
    function = _Counted(9)
    holder = _Holder("a", Deferred(function))
    assert dataclasses.replace(holder, name="b").value == 9
    assert dataclasses.replace(holder, value=None).value is None
    assert function.calls == 1
