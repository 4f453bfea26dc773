"""Human-readable numbers."""

from __future__ import annotations

__all__ = ["format_count", "format_mib", "format_rfield", "format_shape"]

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def format_count(value: int, unit: str) -> str:
    """``3_640_000_000, "FLOPs"`` -> ``"3.64 GFLOPs"`` (SI prefixes, two decimals)."""
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value} {unit}"


def format_mib(nbytes: int) -> str:
    """Bytes in MiB (1024²) with two decimals."""
    return f"{nbytes / 1024**2:.2f} MiB"


def format_shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "(" + ", ".join(str(size) for size in shape) + ")"


def format_rfield(value: tuple[int, ...] | str | None) -> str:
    """Receptive field sizes per spatial dim (``(212, 212)`` -> ``"212x212"``), a marker, or ``"-"``."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else "x".join(str(size) for size in value)
