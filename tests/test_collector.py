"""The collector paused around an analysis and frozen after the command's setup (torchscan.collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from torchscan.collector import frozen_after, paused


@pytest.fixture
def collector_as_found() -> Iterator[None]:
    """The test process's collector as found after the test: on, and nothing frozen that the test froze."""
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    yield
    if gc.get_freeze_count() != frozen:
        gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


@pytest.mark.usefixtures("collector_as_found")
@pytest.mark.parametrize("enabled", [True, False])
def test_paused_turns_the_collector_off_and_puts_it_back_as_found(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    with paused():
        assert not gc.isenabled()
        with paused():  # nested (an analysis run from a report's first read): the outer one turns it on
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled() is enabled
    with pytest.raises(ValueError), paused():
        raise ValueError
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("collector_as_found")
def test_frozen_after_freezes_what_the_block_made_and_turns_the_collector_back_on() -> None:
    gc.enable()
    gc.unfreeze()
    with frozen_after():
        assert not gc.isenabled()
        made = [[index] for index in range(10_000)]  # tracked containers
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)
    collected = {id(item) for item in gc.get_objects()}  # the three generations: the permanent one aside
    assert not any(id(item) in collected for item in made)


@pytest.mark.usefixtures("collector_as_found")
def test_frozen_after_freezes_nothing_when_the_block_fails() -> None:
    gc.enable()
    gc.unfreeze()
    with pytest.raises(RuntimeError), frozen_after():
        raise RuntimeError("the model could not be built")
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
