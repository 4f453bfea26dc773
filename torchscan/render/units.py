"""Human-readable numbers: counts with SI prefixes, bytes with binary prefixes, 3 significant digits."""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = [
    "format_bytes",
    "format_count",
    "format_percent",
    "format_rfield",
    "format_shape",
    "parse_size",
    "significant",
]

_SI = ("", "k", "M", "G", "T", "P", "E")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_DIGITS = 3


def significant(value: float, digits: int = _DIGITS) -> str:
    """``value`` rounded to ``digits`` significant digits, no exponent: ``3.6385 -> "3.64"``,
    ``44.6 -> "44.6"``, ``118.01 -> "118"``, ``0.0123456 -> "0.0123"``, ``1023.7 -> "1024"`` (integer
    digits are never dropped)."""
    if value == 0:
        return "0"
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    decimals = max(digits - 1 - math.floor(math.log10(magnitude)), 0)
    text = f"{magnitude:.{decimals}f}"
    if decimals and len(text.replace(".", "").lstrip("0")) > digits:  # 9.995 rounded up to 10.00
        text = f"{magnitude:.{decimals - 1}f}"
    return sign + text


def _scaled(value: float, base: int, prefixes: tuple[str, ...]) -> tuple[str, str]:
    """``(digits, prefix)`` with ``1 <= |value| / base**i < base`` after rounding to 3 significant digits."""
    magnitude = abs(value)
    index = 0
    while index + 1 < len(prefixes) and magnitude >= base ** (index + 1):
        index += 1
    text = significant(magnitude / base**index)
    if float(text) >= base and index + 1 < len(prefixes):  # 999.7k rounds to 1000k: 1.00M
        index += 1
        text = significant(magnitude / base**index)
    return ("-" if value < 0 else "") + text, prefixes[index]


def format_count(value: int, unit: str = "") -> str:
    """A count with an SI prefix (``k`` = 10³, ``M`` = 10⁶, ``G``, ``T``…) and 3 significant digits:
    ``3_638_525_952, "FLOPs"`` -> ``"3.64 GFLOPs"``, ``999_500`` -> ``"1.00M"``; below 1000 the exact
    integer (``680, "params"`` -> ``"680 params"``). Without ``unit`` the prefix follows the digits."""
    if abs(value) < 1000:
        digits, prefix = f"{value:d}" if float(value).is_integer() else significant(value), ""
    else:
        digits, prefix = _scaled(value, 1000, _SI)
    if not unit:
        return digits + prefix
    return f"{digits} {prefix}{unit}"


def format_bytes(nbytes: int) -> str:
    """Bytes with a binary prefix (``KiB`` = 2¹⁰, ``MiB`` = 2²⁰, ``GiB`` = 2³⁰…) and 3 significant digits:
    ``1023 -> "1023 B"``, ``1024 -> "1.00 KiB"``, ``46_797_976 -> "44.6 MiB"``, ``1_254_564_000 -> "1.17 GiB"``;
    below 1 KiB the exact integer."""
    if abs(nbytes) < 1024:
        return f"{nbytes:d} B"
    digits, prefix = _scaled(nbytes, 1024, _BINARY)
    return f"{digits} {prefix}"


def format_percent(part: float, whole: float) -> str:
    """``part`` as a share of ``whole`` with one decimal (``"12.3%"``); ``"0%"`` when ``whole`` is 0."""
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def format_shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "(" + ", ".join(str(size) for size in shape) + ")"


def format_rfield(value: tuple[int, ...] | str | None) -> str:
    """Receptive field sizes per spatial dim (``(212, 212)`` -> ``"212x212"``), a marker, or ``"-"``."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else "x".join(str(size) for size in value)


_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
"""Byte units (any case) and their factors: decimal kB…TB, binary KiB…TiB."""


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``4GiB``, ``512MiB``, ``1.5GB``, ``100kB`` or a plain byte count; ``ValueError`` else.

    Units (any case): B, kB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (powers of 1024); fractions round down.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", text)
    if match is None:
        raise ValueError(f"'{text}' is not a size: give bytes or a number and a unit (512MiB, 4GiB, 2GB)")
    number, unit = match.groups()
    factor = _SIZE_UNITS.get(unit.lower()) if unit else 1
    if factor is None:
        raise ValueError(f"unknown unit '{unit}' in '{text}': use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB")
    return int(Decimal(number) * factor)
