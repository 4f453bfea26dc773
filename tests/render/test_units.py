"""Units: counts with SI prefixes, bytes with binary prefixes, 3 significant digits, read back within rounding."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from torchscan.render.units import format_bytes, format_count, format_percent, significant

_SI = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BINARY = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50, "EiB": 2**60}


def _parse_count(text: str, unit: str) -> float:
    match = re.fullmatch(rf"(-?\d+(?:\.\d+)?) ?([kMGTPE]?){re.escape(unit)}", text)
    assert match, text
    return float(match.group(1)) * _SI[match.group(2)]


def _parse_bytes(text: str) -> float:
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?) (B|[KMGTPE]iB)", text)
    assert match, text
    return float(match.group(1)) * _BINARY[match.group(2)]


def _digits(text: str) -> str:
    return re.match(r"-?([\d.]+)", text).group(1)  # type: ignore[union-attr]


@given(st.integers(min_value=-(10**20), max_value=10**20), st.sampled_from(["", "FLOPs", "MACs"]))
def test_count_reads_back_within_three_significant_digits(value: int, unit: str) -> None:
    text = format_count(value, unit)
    assert abs(_parse_count(text, unit) - value) <= 0.005 * abs(value)  # half a unit of the 3rd digit
    if abs(value) < 1000:
        assert _parse_count(text, unit) == value  # small counts are exact
    else:
        assert 1 <= float(_digits(text)) < 1000 and len(_digits(text).replace(".", "")) == 3, text


@given(st.integers(min_value=0, max_value=2**69))
def test_bytes_read_back_within_three_significant_digits(value: int) -> None:
    text = format_bytes(value)
    assert abs(_parse_bytes(text) - value) <= 0.005 * value
    number, digits = float(_digits(text)), _digits(text).replace(".", "")
    if value < 1024:
        assert text == f"{value} B"
    else:
        assert 1 <= number < 1024 and (len(digits) == 3 or (number >= 1000 and len(digits) == 4)), text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
        (1025, "1.00 KiB"),
        (1024**2 - 1, "1.00 MiB"),  # 1023.999 KiB rounds up to the next prefix, never "1024 KiB"
        (1023 * 1024, "1023 KiB"),
        (2720, "2.66 KiB"),  # 680 float32 parameters: not "0.00 MiB"
        (46_797_976, "44.6 MiB"),
        (1_254_564_000, "1.17 GiB"),  # not "1196.45 MiB"
        (1246.81 * 2**20, "1.22 GiB"),
    ],
)
def test_byte_boundaries(value: int, text: str) -> None:
    assert format_bytes(int(value)) == text


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0, "FLOPs", "0 FLOPs"),
        (680, "params", "680 params"),
        (999, "", "999"),
        (1000, "", "1.00k"),
        (999_499, "", "999k"),
        (999_500, "", "1.00M"),  # 999.5k rounds to 1000k: the next prefix
        (9_996_000, "", "10.0M"),
        (3_638_525_952, "FLOPs", "3.64 GFLOPs"),
        (118_013_952, "MACs", "118 MMACs"),
        (-1_820_672_000, "MACs", "-1.82 GMACs"),
        (4 * 10**12, "FLOPs", "4.00 TFLOPs"),
    ],
)
def test_count_boundaries(value: int, unit: str, text: str) -> None:
    assert format_count(value, unit) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(3.6385, "3.64"), (9.995, "9.99"), (9.9951, "10.0"), (99.96, "100"), (0.0123456, "0.0123"), (-44.64, "-44.6")],
)
def test_significant(value: float, text: str) -> None:
    assert significant(value) == text


def test_percent() -> None:
    assert format_percent(1, 8) == "12.5%" and format_percent(5, 0) == "0%" and format_percent(3, 3) == "100.0%"
