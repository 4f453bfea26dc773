"""The hypothesis profiles reach every property test: no pinned or fixed example counts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import settings

from tests import profiles

TESTS = Path(__file__).parent


def _offences(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each ``settings(...)`` call that pins its examples (``derandomize``,
    a database-free ``seed``) or fixes their count (``max_examples`` not through ``examples(n)``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "seed":
            found.append((node.lineno, "@seed pins the examples"))
        if name != "settings":
            continue
        for keyword in node.keywords:
            if keyword.arg == "derandomize":
                found.append((node.lineno, "derandomize pins the examples"))
            if keyword.arg == "max_examples":
                value = keyword.value
                scaled = isinstance(value, ast.Call) and getattr(value.func, "id", "") == "examples"
                if not scaled:
                    found.append((node.lineno, "max_examples not scaled by examples(n)"))
    return found


def test_no_property_test_pins_or_fixes_its_examples() -> None:
    offences = [
        f"{path.relative_to(TESTS.parent)}:{line}: {what}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, what in _offences(path.read_text())
    ]
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize(
    ("source", "count"),
    [
        ("@settings(max_examples=10)\ndef f(): ...", 1),
        ("@settings(max_examples=10, derandomize=True)\ndef f(): ...", 2),
        ("@hypothesis.settings(deadline=None, max_examples=n)\ndef f(): ...", 1),
        ("@seed(3)\ndef f(): ...", 1),
        ("@settings(max_examples=examples(10), deadline=None)\ndef f(): ...", 0),
        ("@settings(deadline=None)\ndef f(): ...", 0),
    ],
)
def test_the_check_catches_pinned_and_fixed_counts(source: str, count: int) -> None:
    assert len(_offences(source)) == count


def test_examples_scale_with_the_loaded_profile() -> None:
    scale = settings.default.max_examples / profiles.DEFAULT_EXAMPLES
    assert scale in profiles.PROFILES.values()
    assert profiles.examples(20) == settings.default.max_examples
    assert profiles.examples(7) == round(7 * scale)
    for name, factor in profiles.PROFILES.items():
        assert settings.get_profile(name).max_examples == profiles.DEFAULT_EXAMPLES * factor
        assert not settings.get_profile(name).derandomize
    assert settings.get_profile("thorough").max_examples >= 10 * settings.get_profile("default").max_examples
