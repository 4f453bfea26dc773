"""What the model's code changes in the process while a capture runs it: put back, and globals never
replayed across blocks."""

from __future__ import annotations

import random
import types

import pytest
import torch
from torch import nn

from torchscan import crawl_module
from torchscan.graph.kept import KeptState

_SOURCE = '''
import torch
from torch import nn

CALLS = 0


class Counted(nn.Module):
    """Bumps a module-level counter and branches on its parity (``value_branch``: and on the input's values)."""

    def __init__(self, value_branch=False):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.value_branch = value_branch

    def forward(self, x):
        global CALLS
        CALLS += 1
        if self.value_branch and x.sum() > 0:
            x = x + 1
        if CALLS % 2:
            return torch.relu(self.fc(x))
        return self.fc(x) * 3
'''


def _namespace() -> types.ModuleType:
    """A fresh module holding ``Counted`` and its counter (each test its own)."""
    module = types.ModuleType("counted_blocks")
    exec(compile(_SOURCE, "counted_blocks.py", "exec"), module.__dict__)
    return module


def test_what_a_capture_binds_is_named_and_put_back() -> None:
    module = _namespace()
    kept = KeptState([module.Counted()])
    assert kept.written() == []
    module.CALLS, module.NEW = 5, 1
    del module.torch
    assert kept.written() == ["counted_blocks.CALLS", "counted_blocks.NEW", "counted_blocks.torch"]
    kept.restore()
    assert (module.CALLS, hasattr(module, "NEW"), module.torch) == (0, False, torch)
    assert kept.written() == []


def test_torch_s_own_classes_are_not_watched() -> None:
    assert KeptState([nn.Linear(2, 2), nn.Sequential()])._found == []


@pytest.mark.parametrize("value_branch", [False, True])
def test_blocks_binding_a_global_get_the_graph_of_a_real_forward_and_leave_it_as_found(value_branch: bool) -> None:
    """Six blocks alternate their branch through a global counter: the graph holds three of each branch
    (block reuse would replay the first block's), and the counter is 0 after, whether fx traces the model
    or (a branch on values) one real forward runs it."""
    module = _namespace()
    model = nn.Sequential(*(module.Counted(value_branch) for _ in range(6)))
    report = crawl_module(model, (8,), batch_size=2)
    kinds = [report.records.nodes[name]["record"].type_name for name in report.records]
    assert kinds.count("mul") == 3 and kinds.count("relu") == 3
    assert module.CALLS == 0
    model(torch.ones(2, 8))  # the user's own forward binds it as it always did
    assert module.CALLS == 6


def test_a_generator_is_put_back_only_where_the_model_s_code_reaches_it() -> None:
    """A draw while the analysis runs (the forward's, or another thread's) is undone where the model's code
    reaches Python's generator (``import random``, ``from random import random``), never elsewhere: another
    thread drawing meanwhile keeps its draws when the model could not have drawn."""
    plain, reaching = _namespace(), _namespace()
    exec("import random", reaching.__dict__)
    for module, undone in ((plain, False), (reaching, True)):
        kept, state = KeptState([module.Counted()]), random.getstate()
        random.random()
        kept.restore()
        assert (random.getstate() == state) == undone
    exec("from random import random as draw", plain.__dict__)  # a function bound to the global generator
    kept, state = KeptState([plain.Counted()]), random.getstate()
    random.random()
    kept.restore()
    assert random.getstate() == state


def test_a_decorated_forward_is_read_through_to_its_own_code() -> None:
    """A forward wrapped by a library's decorator (``functools.wraps``) whose module imports ``random`` for
    its own use does not reach the generator; the forward's own module does where it imports it."""
    library = types.ModuleType("decorating_library")
    exec(
        "import functools, random\n"
        "def decorated(function):\n"
        "    @functools.wraps(function)\n"
        "    def wrapper(*args, **kwargs):\n"
        "        return function(*args, **kwargs)\n"
        "    return wrapper\n",
        library.__dict__,
    )
    for imports, reached in (("", False), ("import random\n", True)):
        module = types.ModuleType("decorated_model")
        module.__dict__["decorated"] = library.decorated
        exec(
            f"{imports}from torch import nn\n"
            "class Decorated(nn.Module):\n"
            "    @decorated\n"
            "    def forward(self, x):\n"
            "        return x\n",
            module.__dict__,
        )
        kept, state = KeptState([module.Decorated()]), random.getstate()
        random.random()
        kept.restore()
        assert (random.getstate() == state) == reached
