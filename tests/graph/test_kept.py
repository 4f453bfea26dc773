"""What the model's code changes in the process while a capture runs it: put back, and globals never
replayed across blocks."""

from __future__ import annotations

import io
import random
import types

import pytest
import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode

from torchscan import crawl_module, summary, sweep
from torchscan.graph.kept import KeptState, kept_as_found

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


_CACHES = '''
import functools
import torch
from torch import nn

STEPS = {8: 2}
TABLES = {}
SHAPES = []
SEEN = set()


@functools.lru_cache(maxsize=4)
def table(n):
    return torch.ones((n, n))


def cached_wrapper(function):
    """A decorator holding its ``lru_cache`` in its wrapper's closure (Hugging Face's method caches)."""
    cached = functools.lru_cache(maxsize=1)(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return cached(*args, **kwargs)

    return wrapper


@cached_wrapper
def ramp(n):
    return torch.arange(n)


class Caching(nn.Module):
    """Fills every kind of cache its forward may reach: a global dict, list and set, a class-level dict,
    an ``lru_cache`` bound to a global, one held in a decorator's closure, and one on a static method."""

    per_size = {}

    def __init__(self, memo=True):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.memo = memo

    @staticmethod
    @functools.lru_cache(maxsize=2)
    def offsets(n):
        return torch.zeros(n)

    def forward(self, x):
        n = x.shape[-1]
        SHAPES.append(n)
        SEEN.add(n)
        x = x @ table(n) + ramp(n) + self.offsets(n)
        if self.memo:  # a table keyed by a size (a proxy is no key: fx cannot trace it, a recording can)
            x = x * STEPS[n]
            if n not in TABLES:
                TABLES[n] = torch.ones(n)
            if n not in Caching.per_size:
                Caching.per_size[n] = torch.zeros(n)
            x = x + TABLES[n] + Caching.per_size[n]
        return self.fc(x)
'''


def _caching() -> types.ModuleType:
    """A fresh module holding ``Caching`` and its caches (each test its own)."""
    module = types.ModuleType("caching_model")
    exec(compile(_CACHES, "caching_model.py", "exec"), module.__dict__)
    return module


def _cache_sizes(module: types.ModuleType) -> tuple[int, ...]:
    closure = module.ramp.__closure__
    assert closure is not None
    held = next(cell.cell_contents for cell in closure if hasattr(cell.cell_contents, "cache_info"))
    return tuple(cache.cache_info().currsize for cache in (module.table, held, module.Caching.offsets))


def test_containers_holding_what_an_analysis_makes_are_put_back_in_place() -> None:
    """A container a global, a class attribute or a closure cell holds that gained a fake tensor, a trace's
    proxy (as a key too), a module of a copy, or a tuple holding one, gets its items back (the same objects,
    the container itself never replaced); one that gained real values only (a size logged, a tensor built
    from constants) is left as changed (a real forward would change it so; another thread's changes are not
    undone). :meth:`KeptState.written` names every container changed."""
    module = _caching()
    first, kept_value = torch.ones(1), object()
    module.TABLES[1], module.Caching.per_size[2] = first, kept_value
    tables, shapes, seen, per_size = module.TABLES, module.SHAPES, module.SEEN, module.Caching.per_size
    with FakeTensorMode() as mode:
        fake = torch.empty(3)
    proxy = fx.Tracer().trace(nn.Linear(2, 2)).nodes.__iter__().__next__()  # a node: proxies wrap one
    made = {
        "TABLES": lambda: module.TABLES.__setitem__(1, fake),  # an item replaced by a fake
        "SHAPES": lambda: module.SHAPES.append((4, fx.Proxy(proxy))),  # a proxy inside a tuple
        "SEEN": lambda: module.SEEN.add(nn.Linear(2, 2)),  # a module not the model's
        "per_size": lambda: module.Caching.per_size.__setitem__(fx.Proxy(proxy), 1),  # a proxy as a key
    }
    kept = KeptState([module.Caching()])
    for make in made.values():
        make()
    assert kept.written() == ["Caching.per_size", "caching_model.SEEN", "caching_model.SHAPES", "caching_model.TABLES"]
    kept.restore()
    assert dict(module.TABLES) == {1: first} and module.TABLES[1] is first
    assert dict(module.Caching.per_size) == {2: kept_value}
    assert not module.SHAPES and not module.SEEN
    assert module.TABLES is tables and module.SHAPES is shapes and module.SEEN is seen
    assert module.Caching.per_size is per_size
    assert kept.written() == []
    assert mode is not None
    module.SHAPES.append(5)
    module.TABLES[5] = torch.ones(5)
    kept.restore()  # real values only: left as changed
    assert module.SHAPES == [5] and set(module.TABLES) == {1, 5}
    assert kept.written() == ["caching_model.SHAPES", "caching_model.TABLES"]


def test_a_module_made_after_the_model_is_dropped_is_not_taken_for_the_models() -> None:
    """The state pins the modules it was given: a module the model's code makes later can never take the
    id of one of them (CPython reuses a freed object's address for the next of its size) and pass for the
    model's own, so a container holding it is put back (the test above failed once that way)."""
    module = _caching()
    kept = KeptState([module.Caching() for _ in range(8)])  # the state holds the only references
    made = [module.Caching() for _ in range(8)]  # where the freed ones were, were they freed
    for item in made:  # one at a time: a container is put back when any item it gained is the analysis's
        module.SEEN.add(item)
        kept.restore()
        assert not module.SEEN


def test_a_container_in_a_closure_cell_is_noted() -> None:
    """A cache a decorator keeps in its wrapper's closure (a dict, not an ``lru_cache``) is put back too."""
    module = types.ModuleType("closure_cache")
    exec(
        "from torch import nn\n"
        "def memoized(function):\n"
        "    memo = {}\n"
        "    def wrapper(n):\n"
        "        if n not in memo:\n"
        "            memo[n] = function(n)\n"
        "        return memo[n]\n"
        "    return wrapper\n"
        "@memoized\n"
        "def table(n):\n"
        "    return n\n"
        "class Model(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x * table(x.shape[-1])\n",
        module.__dict__,
    )
    closure = module.table.__closure__
    assert closure is not None
    memo = next(cell.cell_contents for cell in closure if isinstance(cell.cell_contents, dict))
    kept = KeptState([module.Model()])
    with FakeTensorMode():
        memo[3] = torch.empty(3)
    assert kept.written() == ["closure_cache.table (closure)"]
    kept.restore()
    assert memo == {}


def test_a_closure_cell_a_method_rebinds_is_named_and_put_back() -> None:
    """A decorator's wrapper counting calls in a ``nonlocal`` (or one the model binds late, an empty cell
    before) rebinds its cell at each call the capture makes: the cell is named and holds its value again."""
    module = types.ModuleType("closure_counter")
    exec(
        "from torch import nn\n"
        "def counted(function):\n"
        "    calls = 0\n"
        "    def wrapper(self, x):\n"
        "        nonlocal calls, last\n"
        "        calls += 1\n"
        "        last = x.shape\n"
        "        return function(self, x)\n"
        "    return wrapper\n"
        "    last = None\n"
        "class Model(nn.Module):\n"
        "    @counted\n"
        "    def forward(self, x):\n"
        "        return x * 2\n",
        module.__dict__,
    )
    model = module.Model()
    kept = KeptState([model])
    model(torch.zeros(2))
    assert kept.written() == ["Model.forward (closure: calls)", "Model.forward (closure: last)"]
    kept.restore()
    assert kept.written() == []
    wrapper = module.Model.forward
    cells = dict(zip(wrapper.__code__.co_freevars, wrapper.__closure__, strict=True))
    calls, last = cells["calls"], cells["last"]
    assert calls.cell_contents == 0
    with pytest.raises(ValueError):
        last.cell_contents  # noqa: B018 (empty again, as found)
    crawl_module(model, (3,))
    assert calls.cell_contents == 0


def test_an_lru_cache_that_missed_is_emptied_one_only_read_is_not() -> None:
    """A cache bound to a global, held in a decorator's closure or on a static method that made a value while
    the state was kept is emptied (the value could be the analysis's fake tensor); one that only hit keeps
    its entries."""
    module = _caching()
    module.table(3)
    kept = KeptState([module.Caching()])
    module.table(3)  # a hit: the user's own value handed back
    kept.restore()
    assert _cache_sizes(module) == (1, 0, 0)
    kept = KeptState([module.Caching()])
    module.table(4), module.ramp(4), module.Caching.offsets(4)
    assert _cache_sizes(module) == (2, 1, 1)
    kept.restore()
    assert _cache_sizes(module) == (0, 0, 0)


def test_kept_as_found_restores_however_the_block_ends() -> None:
    module = _caching()
    with FakeTensorMode():
        fake = torch.empty(1)
    with pytest.raises(RuntimeError), kept_as_found([module.Caching()]):
        module.SHAPES.append(fake)
        module.table(2)
        raise RuntimeError
    assert not module.SHAPES and _cache_sizes(module) == (0, 0, 0)


@pytest.mark.parametrize("how", ["traced", "recorded", "sweep", "training"])
def test_an_analysis_leaves_no_value_of_its_own_in_the_model_s_caches(how: str) -> None:
    """After an analysis (traced; recorded, where ``STEPS[n]`` on a traced size makes fx's trace fail;
    a sweep; in training mode) every cache the forward filled is as found, and the user's next real forward
    runs on real tensors and gives what it gave before: without the restore the recorded capture left a fake
    tensor in ``TABLES`` and the forward returned a fake tensor (the traced one left proxies in ``SHAPES``)."""
    module = _caching()
    model = module.Caching(memo=how != "traced").train(how == "training")
    x = torch.randn(2, 5, 8)
    expected = model(x)
    for cache in (module.TABLES, module.SHAPES, module.SEEN, module.Caching.per_size):
        cache.clear()
    for function in (module.table, module.Caching.offsets):
        function.cache_clear()
    closure = module.ramp.__closure__
    assert closure is not None
    next(cell.cell_contents for cell in closure if hasattr(cell.cell_contents, "cache_clear")).cache_clear()
    found = (dict(module.TABLES), dict(module.Caching.per_size), _cache_sizes(module))
    if how == "sweep":
        reports = sweep(model, [(5, 8), (6, 8)])
        diagnostics = reports[0].diagnostics
    else:
        diagnostics = crawl_module(model, (5, 8)).diagnostics
    fallback = any(diagnostic.code == "capture-fallback" for diagnostic in diagnostics)
    assert fallback == (how != "traced")
    # the sizes logged: proxies where traced (put back), real ints where recorded (left, as a real forward)
    assert ([] if how == "traced" else [8] * len(module.SHAPES)) == module.SHAPES
    assert (set() if how == "traced" else {8}) == module.SEEN
    assert (module.TABLES, module.Caching.per_size, _cache_sizes(module)) == found
    assert all(type(value) is torch.Tensor for value in (*module.TABLES.values(), *module.Caching.per_size.values()))
    again = model(x)
    assert type(again) is torch.Tensor and torch.equal(again, expected)


_APPENDING = '''
import torch
from torch import nn

ORDER = []


class Appending(nn.Module):
    """Appends to a module-level list and branches on its length's parity."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        ORDER.append(len(ORDER))
        if len(ORDER) % 2:
            return torch.relu(self.fc(x))
        return self.fc(x) * 3
'''


def test_blocks_filling_a_global_list_are_all_traced_and_the_list_left_as_found() -> None:
    """Six blocks branching on the length of a global list they append to: the graph holds three of each
    branch (a replay would bake the first block's; the trace made again without reuse starts from the list as
    found), and the list holds what one real forward appends (real values: left as the forward leaves them)."""
    module = types.ModuleType("appending_blocks")
    exec(compile(_APPENDING, "appending_blocks.py", "exec"), module.__dict__)
    report = crawl_module(nn.Sequential(*(module.Appending() for _ in range(6))), (8,), batch_size=2)
    kinds = [report.records.nodes[name]["record"].type_name for name in report.records]
    assert kinds.count("mul") == 3 and kinds.count("relu") == 3
    assert module.ORDER == [0, 1, 2, 3, 4, 5]


def test_a_class_attribute_the_forward_binds_is_put_back() -> None:
    """Blocks counting their calls in a class attribute (``type(self).calls += 1``) and branching on its
    parity: three of each branch, and the class attribute as found after (an attribute the forward added to
    the class deleted)."""
    module = types.ModuleType("class_counted")
    exec(
        "import torch\n"
        "from torch import nn\n"
        "class Counted(nn.Module):\n"
        "    calls = 0\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(8, 8)\n"
        "    def forward(self, x):\n"
        "        type(self).calls += 1\n"
        "        type(self).last = x\n"
        "        if type(self).calls % 2:\n"
        "            return torch.relu(self.fc(x))\n"
        "        return self.fc(x) * 3\n",
        module.__dict__,
    )
    kept = KeptState([module.Counted()])
    module.Counted.calls = 3
    assert kept.written() == ["Counted.calls"]
    kept.restore()
    assert module.Counted.calls == 0 and kept.written() == []
    report = crawl_module(nn.Sequential(*(module.Counted() for _ in range(6))), (8,), batch_size=2)
    kinds = [report.records.nodes[name]["record"].type_name for name in report.records]
    assert kinds.count("mul") == 3 and kinds.count("relu") == 3
    assert module.Counted.calls == 0 and not hasattr(module.Counted, "last")


def test_the_real_passes_of_a_measurement_leave_the_globals_as_found() -> None:
    """``summary(..., measure="cpu")`` runs the model's forward for real (a forward and training steps on a
    copy): a global it binds is put back as after an analysis."""
    module = _namespace()
    report = summary(nn.Sequential(module.Counted(), module.Counted()), (8,), measure="cpu", file=io.StringIO())
    assert report.memory is not None and report.memory.measured is not None and report.memory.measured.available
    assert module.CALLS == 0
