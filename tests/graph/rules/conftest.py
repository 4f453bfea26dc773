"""Fixtures of the shape-rule tests."""

from __future__ import annotations

from typing import Any

import pytest
from torch._subclasses.fake_tensor import FakeTensorMode


@pytest.fixture
def fake() -> Any:
    with FakeTensorMode() as mode:
        yield mode
