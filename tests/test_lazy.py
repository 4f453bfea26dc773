"""A package's public names imported on first use (torchscan.lazy): torchscan's and torchscan.zoo's."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

import torchscan
import torchscan.zoo


@pytest.mark.parametrize("package", [torchscan, torchscan.zoo], ids=lambda package: package.__name__)
def test_every_public_name_is_its_module_s_object(package: ModuleType) -> None:
    assert sorted(package.__all__) == sorted(package._HOMES)
    for name in package.__all__:
        assert getattr(package, name) is getattr(importlib.import_module(package._HOMES[name]), name)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match=f"module '{package.__name__}' has no attribute 'crawl'"):
        _ = package.crawl


def test_names_import_through_the_module_s_getattr() -> None:
    from torchscan import Report, crawl_module  # from-imports through the package's __getattr__

    assert (Report, crawl_module) == (torchscan.report.Report, torchscan.api.crawl_module)
