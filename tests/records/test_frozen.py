"""``frozen_record`` makes the same frozen slotted dataclass as ``@dataclass(frozen=True, slots=True)``,
only built faster: checked against that dataclass on random field layouts."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.profiles import examples
from torchscan.records.frozen import frozen_record

_KINDS = ("required", "default", "factory")


def _classes(kinds: list[str], base_kinds: list[str], post_init: bool) -> tuple[type, type]:
    """The same class declared twice: with ``frozen_record`` and with the plain dataclass decorator;
    ``base_kinds``: fields of a frozen base class (its fields come first), ``post_init``: a
    ``__post_init__`` that stores a derived value in the last field."""

    def namespace(names: list[str], kinds_: list[str]) -> dict[str, Any]:
        ns: dict[str, Any] = {"__annotations__": {}}
        for name, kind in zip(names, kinds_, strict=True):
            ns["__annotations__"][name] = "Any"
            if kind == "default":
                ns[name] = len(name)
            elif kind == "factory":
                ns[name] = dataclasses.field(default_factory=list)
        return ns

    base_names = [f"b{i}" for i in range(len(base_kinds))]
    names = [f"f{i}" for i in range(len(kinds))]
    made = []
    for decorate in (frozen_record, dataclasses.dataclass(frozen=True, slots=True)):
        base = decorate(type("Base", (), namespace(base_names, base_kinds))) if base_kinds else object
        ns = namespace(names, kinds)
        if post_init and (names or base_names):
            last = (base_names + names)[-1]

            def __post_init__(self: Any, last: str = last) -> None:
                object.__setattr__(self, last, ("post", getattr(self, last)))

            ns["__post_init__"] = __post_init__
        made.append(decorate(type("Record", (base,), ns)))
    return made[0], made[1]


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[str], list[str], bool, list[Any], dict[str, Any]]:
    """Field kinds (no required field after one with a default; the base's all required), whether
    there is a ``__post_init__``, and arguments: required ones positional then by keyword, some of
    the optional ones by keyword."""
    base_kinds = draw(st.lists(st.just("required"), max_size=2))
    kinds = sorted(draw(st.lists(st.sampled_from(_KINDS), max_size=6)), key=lambda kind: kind != "required")
    post_init = draw(st.booleans())
    required = [f"b{i}" for i in range(len(base_kinds))] + [f"f{i}" for i, k in enumerate(kinds) if k == "required"]
    optional = [f"f{i}" for i, kind in enumerate(kinds) if kind != "required"]
    values = draw(st.lists(st.integers() | st.text(max_size=3), min_size=len(required), max_size=len(required)))
    positional = draw(st.integers(0, len(required)))
    given_optional = draw(st.lists(st.sampled_from(optional), unique=True)) if optional else []
    args = values[:positional]
    kwargs = dict(zip(required[positional:], values[positional:], strict=True))
    kwargs.update({name: (name, 1) for name in given_optional})
    return kinds, base_kinds, post_init, args, kwargs


@settings(max_examples=examples(150), deadline=None)
@given(layouts())
def test_a_record_equals_the_dataclass_built_from_the_same_arguments(
    layout: tuple[list[str], list[str], bool, list[Any], dict[str, Any]],
) -> None:
    kinds, base_kinds, post_init, args, kwargs = layout
    fast_cls, plain_cls = _classes(kinds, base_kinds, post_init)
    assert fast_cls.__init__.__code__.co_filename.startswith("<frozen_record")
    fast, plain = fast_cls(*args, **kwargs), plain_cls(*args, **kwargs)
    assert dataclasses.astuple(fast) == dataclasses.astuple(plain)
    assert repr(fast).removeprefix("Record") == repr(plain).removeprefix("Record")
    assert fast == fast_cls(*args, **kwargs) == copy.deepcopy(fast)
    if "factory" not in kinds:  # a default factory's list is not hashable
        assert hash(fast) == hash(fast_cls(*args, **kwargs))
    fields = dataclasses.fields(fast)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(fast, fields[0].name, 0)
        assert dataclasses.astuple(dataclasses.replace(fast)) == dataclasses.astuple(dataclasses.replace(plain))
    for field in fields:  # a default factory makes a new object per instance
        if field.default_factory is not dataclasses.MISSING and field.name not in kwargs and not post_init:
            assert getattr(fast, field.name) is not getattr(fast_cls(*args, **kwargs), field.name)


def test_missing_and_unknown_arguments_raise_type_error() -> None:
    fast_cls, _ = _classes(["required", "default"], [], False)
    with pytest.raises(TypeError):
        fast_cls()
    with pytest.raises(TypeError):
        fast_cls(1, f2=3)
    with pytest.raises(TypeError):
        fast_cls(1, 2, 3)


def test_a_class_with_fields_set_otherwise_or_its_own_init_keeps_that_init() -> None:
    @frozen_record
    class KeywordOnly:
        a: int
        b: int = dataclasses.field(default=2, kw_only=True)

    @frozen_record
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    @frozen_record
    class WithInitVar:
        a: int
        scale: dataclasses.InitVar[int] = 1

        def __post_init__(self, scale: int) -> None:
            object.__setattr__(self, "a", self.a * scale)

    @frozen_record
    class OwnInit:
        a: int

        def __init__(self, text: str) -> None:
            object.__setattr__(self, "a", len(text))

    assert KeywordOnly(1, b=3).b == 3 and Derived(1).b == 0 and WithInitVar(2, 3).a == 6 and OwnInit("abc").a == 3
    for cls in (KeywordOnly, Derived, WithInitVar):
        assert not cls.__init__.__code__.co_filename.startswith("<frozen_record")
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls(1).a = 2  # type: ignore[misc]


@frozen_record
class _Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


def test_a_record_pickles_and_keeps_its_signature() -> None:
    point = _Point(1, tags=("a",))
    assert pickle.loads(pickle.dumps(point)) == point
    assert str(inspect.signature(_Point)) == str(
        inspect.signature(
            dataclasses.dataclass(frozen=True, slots=True)(
                type("_Point", (), {"__annotations__": dict(_Point.__annotations__), "y": 0, "tags": ()})
            )
        )
    )


def test_a_frozen_dict_reads_as_a_dict_refuses_writes_and_pickles_as_itself() -> None:
    import copy

    from torchscan.records.frozen import FrozenDict

    frozen = FrozenDict({"stride": (2, 2), "groups": 1})
    assert frozen == {"stride": (2, 2), "groups": 1} and frozen.get("groups") == 1 and dict(frozen) == frozen
    for write in (
        lambda: frozen.__setitem__("groups", 2),
        lambda: frozen.__delitem__("groups"),
        lambda: frozen.update(groups=2),
        lambda: frozen.pop("groups"),
        lambda: frozen.popitem(),
        lambda: frozen.setdefault("bias", None),
        frozen.clear,
    ):
        with pytest.raises(TypeError, match="read-only"):
            write()
    with pytest.raises(TypeError, match="read-only"):
        frozen |= {"groups": 2}
    for again in (pickle.loads(pickle.dumps(frozen)), copy.deepcopy(frozen), copy.copy(frozen)):
        assert type(again) is FrozenDict and again == frozen
    assert repr(frozen) == "FrozenDict({'stride': (2, 2), 'groups': 1})"
