"""Stack-trace texts: the text ``traceback`` formats, each distinct frame formatted once."""

from __future__ import annotations

import subprocess
import sys
import traceback

from hypothesis import given
from hypothesis import strategies as st

from torchscan.graph.stack_text import StackTexts

_FRAMES = st.tuples(
    st.sampled_from([__file__, traceback.__file__, "/no/such/file.py", "<string>"]),
    st.integers(0, 60),
    st.sampled_from(["forward", "<module>", "helper"]),
)


@given(stacks=st.lists(st.lists(_FRAMES, max_size=8), min_size=1, max_size=4))
def test_texts_are_traceback_s(stacks: list[list[tuple[str, int, str]]]) -> None:
    """Stacks sharing frames (read from one cache), source lines present or missing, frames repeated
    back to back (folded by ``traceback`` past three): the text ``traceback`` makes, stripped."""
    texts = StackTexts()
    for frames in [*stacks, *stacks]:  # a second time: every frame from the cache
        summary = traceback.StackSummary.from_list([traceback.FrameSummary(*frame) for frame in frames])
        expected = "".join(summary.format()).strip()
        assert texts.text(frames) == expected


def test_a_recursive_stack_is_folded_as_traceback_folds_it() -> None:
    frame = (__file__, 10, "helper")
    text = StackTexts().text([frame] * 6)
    assert "[Previous line repeated 3 more times]" in text


def test_uninteresting_files_are_fx_s_without_its_imports() -> None:
    """The files fx's filter leaves out, found without importing ``torch.export._trace`` (the test runs
    in a fresh interpreter: in this one an earlier test may have loaded it): the set fx's own
    ``uninteresting_files()`` gives, computed after, and none of the expensive modules loaded by ours."""
    code = (
        "import sys, torch, torchscan\n"
        "from torchscan.graph.stack_text import uninteresting_files\n"
        "ours = uninteresting_files()\n"
        "assert 'torch.export._trace' not in sys.modules\n"
        "from torch.fx.experimental.symbolic_shapes import uninteresting_files as fx_files\n"
        "assert ours == fx_files(), sorted(ours ^ fx_files())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
