"""Hypothesis profiles of the suite, and per-test example counts that scale with them.

``default`` (the suite: 20 examples a property) and ``thorough`` (10x: 200), chosen by the
``HYPOTHESIS_PROFILE`` environment variable (``HYPOTHESIS_PROFILE=thorough python -m pytest``).
Neither derandomizes: every run draws new examples, on CI too (hypothesis loads its own
derandomizing ``ci`` profile when it detects CI, and a profile registered without a parent
inherits from the loaded one, so ``derandomize=False`` is stated; ``print_blob`` prints how to
reproduce a failure). A test that wants another count than the
profile's states it relative to the default run, ``@settings(max_examples=examples(8))``, so the
thorough profile enlarges it too (a literal ``max_examples`` would override the profile;
``tests/test_profiles.py`` refuses one).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["DEFAULT_EXAMPLES", "PROFILES", "examples", "load"]

DEFAULT_EXAMPLES = 20
"""Examples per property test under the default profile."""

PROFILES = {"default": 1, "thorough": 10}
"""Profile name -> how many times the default profile's examples it runs."""

for _name, _scale in PROFILES.items():
    settings.register_profile(
        _name,
        max_examples=DEFAULT_EXAMPLES * _scale,
        deadline=None,
        derandomize=False,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


def load() -> None:
    """Load the profile named by ``HYPOTHESIS_PROFILE`` (``default`` when unset)."""
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def examples(count: int) -> int:
    """``count`` examples under the default profile, scaled like the loaded profile's
    ``max_examples`` (``count · max_examples / 20``; at least 1)."""
    return max(1, round(count * settings.default.max_examples / DEFAULT_EXAMPLES))
