"""The memory package names its public functions."""

from __future__ import annotations

import torchscan.passes.memory as memory


def test_public_names_importable_from_the_package() -> None:
    assert set(memory.__all__) <= set(dir(memory))
    for name in ("estimate_memory", "with_output_bytes", "library_modules", "LIBRARY_MODULES", "workspace"):
        assert name in memory.__all__
