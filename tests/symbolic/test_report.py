"""max_fit's search: the largest size that fits, whatever the (growing) estimate, in few analyses."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.profiles import examples
from torchscan.symbolic.report import _search


def _brute(peak: list[int], budget: int, first: int, step: int, last: int | None) -> tuple[int, int | None]:
    """The answer by walking every size from the first."""
    value = first
    while True:
        after = value + step
        if last is not None and after > last:
            return value, None
        if peak[after] > budget:
            return value, after
        value = after


@st.composite
def _searches(draw: st.DrawFn) -> tuple[list[int], int, int, int, list[int]]:
    """A non-decreasing estimate per size (plateaus, jumps, concave and convex runs: any), a step, a first
    and a last size, and budgets: every value the estimate takes at the admitted sizes, one below and one
    above each (ties decide the answer at the ends of plateaus and at the last size), and random ones."""
    increments = st.one_of(st.just(0), st.integers(0, 9), st.integers(0, 10**6))  # plateaus: ties everywhere
    peak = list(itertools.accumulate(draw(st.lists(increments, min_size=2, max_size=400))))
    step = draw(st.integers(1, 4))
    first = draw(st.integers(0, min(20, len(peak) - 1)))
    end = first + (len(peak) - 1 - first) // step * step
    last = min(first + draw(st.integers(0, 500)) // step * step, end)
    taken = {peak[size] + off for size in range(first, last + 1, step) for off in (-1, 0, 1)}
    return peak, step, first, last, sorted(taken | set(draw(st.lists(st.integers(0, 10**8), max_size=5))))


@given(_searches())
@settings(max_examples=examples(100), deadline=None)
def test_the_search_finds_the_largest_size_that_fits_on_any_growing_estimate(case: tuple) -> None:
    peak, step, first, last, budgets = case
    for budget in budgets:
        if peak[first] > budget:
            continue
        probed: list[int] = []

        def counted(size: int, probed: list[int] = probed) -> int:
            probed.append(size)
            return peak[size]

        assert _search(counted, budget, first, step, last) == _brute(peak, budget, first, step, last), budget
        assert all(first <= size <= last and (size - first) % step == 0 for size in probed)


def test_a_linear_estimate_takes_a_handful_of_analyses_where_bisection_took_sixteen() -> None:
    probed: set[int] = set()

    def linear(size: int) -> int:
        probed.add(size)
        return 7_340_032 + 91_750_400 * size  # bytes: a model, then activations per sample

    budget = 80 * 2**30
    answer = (budget - 7_340_032) // 91_750_400
    assert _search(linear, budget, 2, 1, None) == (answer, answer + 1)
    assert len(probed) <= 6
