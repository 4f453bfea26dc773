"""What one line of the user's ``forward`` binds, read from its source text (regex + ``ast``).

Models: eager PyTorch frees a tensor when its last Python reference goes, not after its last use
by an op. A result bound to a local (``y = f(x)``) is held by that name until the name is rebound
or the frame returns; the old value of a rebound name is held until the rebinding statement
completes (``x = torch.cat([x, y], 1)`` keeps the old ``x`` through the ``cat``); ``y += z`` runs
in place. fx erases names, so the only record of them is the source line in each node's stack
trace; this module parses that line. The plain producer → last-consumer rule alone was 15.1% under
the measured peak of DenseNet-121 (1.41 vs 1.66 MiB at 64×64, batch 2: each dense layer's
concatenation stays bound to a name); with these rules it is exact there.

Annotated assignments (``h: Tensor = f(x)``) bind their name as plain ones do. Limits: one statement per source
line (the line fx recorded, stripped: a multi-line statement is read from its first
line, a one-line compound statement as its body, :func:`one_statement`); tuple targets (``a, b = f(x)``) rebind each
of their names (the old values are freed when the statement completes) but bind no node's value (which item goes
where is not read), except a tuple of as many expressions (``q, k = self.q(x), self.k(x)``), whose values are the
line's nodes no later node of it reads, in order; attribute/subscript targets, walrus and ``del`` are not seen
(``None``/no binding: those values fall back to the plain rule); names are matched textually, so shadowing across
frames is not modelled.
"""

from __future__ import annotations

import ast
import functools
import linecache
import operator
import re
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from torchscan.graph.calls import display_type

__all__ = [
    "AUGMENTABLE",
    "appended_name",
    "assigned_name",
    "is_augmented",
    "listed_name",
    "one_statement",
    "paired_names",
    "parameter_names",
    "passed_name",
    "rebound_names",
    "root_call",
    "statement_text",
    "unpacked_names",
]

_ASSIGN = re.compile(r"^([A-Za-z_]\w*)\s*(?::[^=]+)?=[^=]")
"""``name = …``, or annotated, ``name: T = …``."""
_UNPACK = re.compile(r"^\(?\s*(\*?[A-Za-z_]\w*(?:\s*,\s*\*?[A-Za-z_]\w*)*)\s*,?\s*\)?\s*=[^=]")
_NAME = re.compile(r"\*?([A-Za-z_]\w*)")
_AUGMENTED = re.compile(r"^[\w.\[\]]+\s*(\+|-|\*|/|@)=")
_APPEND = re.compile(r"^([A-Za-z_]\w*)\.(?:append|extend|insert)\(")
_COMPOUND = re.compile(r"^(?:if|elif|else|for|while|with|try|finally|def|async)\b")
_BLOCK = re.compile(r"^(?:else|try|finally)\s*:")
_HEADERS = (ast.If, ast.For, ast.While, ast.With, ast.FunctionDef, ast.AsyncFor, ast.AsyncWith, ast.AsyncFunctionDef)

_BINOPS: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.MatMult: operator.matmul,
}
"""Python's binary operators and the targets fx records for them."""

AUGMENTABLE = frozenset(display_type(target) for target in _BINOPS.values())
"""Recorded names of the ops an augmented assignment (``+=``, ``-=``, ``*=``, ``/=``, ``@=``) traces to."""


@functools.lru_cache(maxsize=4096)
def one_statement(line: str) -> str:
    """The simple statement a stripped source line runs: the line itself, or the body of a compound
    statement written on one line (``if c: x = f(x)``, ``for b in bs: x = b(x)``, ``else: y = g(y)``,
    ``def block(self, t): return self.f(t)``), so that it binds as the same body on a line of its own
    would; a line whose body holds several statements (``if c: a = f(x); b = g(a)``) is left as it is."""
    if _COMPOUND.match(line) is None:
        return line
    text = line[2:] if line.startswith("elif") else _BLOCK.sub("if True:", line, count=1)
    try:
        body = ast.parse(text).body
    except SyntaxError:
        return line
    if len(body) != 1 or not isinstance(body[0], _HEADERS) or len(body[0].body) != 1:
        return line
    inner = ast.get_source_segment(text, body[0].body[0])
    return line if inner is None else one_statement(inner)


def appended_name(code: str) -> str | None:
    """The name of the list a line adds to (``outs.append(f(x))``, ``.extend``, ``.insert``), else None."""
    match = _APPEND.match(code)
    return match.group(1) if match is not None else None


@functools.lru_cache(maxsize=4096)
def listed_name(code: str) -> tuple[str, str] | None:
    """(the call, the name) where the value of a line (``y = torch.cat(outs, dim=1)``, or an expression) is a call
    whose one tensor argument is a bare name (its other arguments constants): ``("cat", "outs")``; else None.
    The name holds what the call reads (a list's items) until it is bound again or its frame returns."""
    try:
        statement = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return None
    value = statement.value if isinstance(statement, (ast.Assign, ast.Expr, ast.Return)) else None
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute) or len(value.args) < 1:
        return None
    first, rest = value.args[0], [*value.args[1:], *(keyword.value for keyword in value.keywords)]
    if not isinstance(first, ast.Name) or not all(isinstance(item, ast.Constant) for item in rest):
        return None
    return value.func.attr, first.id


_DEF = r"^(\s*)(?:async\s+)?def\s+{}\s*\("
_HEADER_LINES = 30
"""Most lines a ``def`` header (its parameters) is read over."""


@functools.lru_cache(maxsize=1024)
def parameter_names(file: str, line: int, function: str) -> tuple[str, ...] | None:
    """The parameters of the function named ``function`` whose body holds line ``line`` of ``file``: positional
    ones in order, then ``"*"`` and the keyword-only ones where it has any. Read from its ``def`` in the source
    (:mod:`linecache`, as stack traces read it); None where it is not found (no source, a lambda, a ``def`` spelled
    over more than :data:`_HEADER_LINES` lines)."""
    lines = linecache.getlines(file)
    if not 0 < line <= len(lines):
        return None
    body = lines[line - 1]
    indent = len(body) - len(body.lstrip())
    pattern = re.compile(_DEF.format(re.escape(function)))
    for start in range(line - 2, -1, -1):
        match = pattern.match(lines[start])
        if match is None or len(match.group(1)) >= indent:
            continue
        for end in range(start + 1, min(start + _HEADER_LINES, len(lines)) + 1):
            try:
                tree = ast.parse(textwrap.dedent("".join(lines[start:end])) + "\n    pass\n")
            except SyntaxError:
                continue
            definition = tree.body[0]
            if not isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return None
            arguments = definition.args
            positional = tuple(item.arg for item in (*arguments.posonlyargs, *arguments.args))
            keyword_only = tuple(item.arg for item in arguments.kwonlyargs)
            return (*positional, "*", *keyword_only) if keyword_only else positional
        return None
    return None


@functools.lru_cache(maxsize=4096)
def passed_name(code: str, callee: str, parameters: tuple[str, ...], parameter: str) -> str | None:
    """The bare name a line's outermost call, of ``callee`` (``self.mid(…)``, ``mid(…)``: the attribute or name
    called), passes as ``parameter`` of a function of ``parameters`` (:func:`parameter_names`):
    ``x = self.mid(x, output)`` calling ``forward(self, x, concat_list)`` passes ``output`` as ``concat_list`` (a
    method's ``self`` is the call's receiver); None where the line calls something else (``checkpoint(self.mid,
    …)``) or passes no bare name there (an expression, a starred argument before it, unparsable)."""
    try:
        statement = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return None
    value = statement.value if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.Expr, ast.Return)) else None
    if not isinstance(value, ast.Call) or parameter not in parameters or parameter == "*":
        return None
    called = value.func.attr if isinstance(value.func, ast.Attribute) else getattr(value.func, "id", None)
    if called != callee:
        return None
    passed = next((keyword.value for keyword in value.keywords if keyword.arg == parameter), None)
    positional = parameters[: parameters.index("*")] if "*" in parameters else parameters
    if passed is None and parameter in positional:
        index = positional.index(parameter) - (1 if positional[0] == "self" else 0)  # positional holds it
        if not 0 <= index < len(value.args) or any(isinstance(item, ast.Starred) for item in value.args[: index + 1]):
            return None
        passed = value.args[index]
    return passed.id if isinstance(passed, ast.Name) else None


def assigned_name(code: str) -> str | None:
    """The name a plain assignment ``name = …`` (or ``name: T = …``) binds, else None."""
    match = _ASSIGN.match(code)
    return match.group(1) if match is not None else None


@functools.lru_cache(maxsize=4096)
def rebound_names(code: str) -> tuple[str, ...]:
    """The names an assignment binds: ``name = …`` (or ``name: T = …``) one, tuple targets ``a, b, *c = …``
    each of them (their old values are released when the statement completes), else none."""
    match = _UNPACK.match(code)
    if match is None:
        name = assigned_name(code)
        return () if name is None else (name,)
    return tuple(_NAME.fullmatch(part.strip()).group(1) for part in match.group(1).split(","))  # type: ignore[union-attr]


def _tuple_targets(code: str) -> tuple[tuple[str, ...], ast.expr] | None:
    """The names of a line's tuple targets (two or more plain names, each once) and the value they are bound to,
    where no name is read by that value (it may feed the next iteration: a swap, a loop's feed); None for any
    other line (one target, a starred or attribute target, unparsable)."""
    try:
        statement = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return None
    if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
        return None
    target, value = statement.targets[0], statement.value
    if not isinstance(target, ast.Tuple) or len(target.elts) < 2:
        return None
    if not all(isinstance(item, ast.Name) for item in target.elts):
        return None
    names = tuple(item.id for item in target.elts)  # type: ignore[attr-defined]
    read = any(isinstance(node, ast.Name) and node.id in names for node in ast.walk(value))
    return None if read or len(set(names)) != len(names) else (names, value)


@functools.lru_cache(maxsize=4096)
def paired_names(code: str) -> tuple[str, ...]:
    """The names of tuple targets bound item by item to a tuple of as many expressions
    (``q, k = self.q(x), self.k(x)``): each name holds its own expression's value; () for any other
    line (one target, a starred target, an unpacked call ``a, b = f(x)``, a name read on its own line,
    unparsable)."""
    found = _tuple_targets(code)
    if found is None or not isinstance(found[1], ast.Tuple) or len(found[1].elts) != len(found[0]):
        return ()
    return found[0]


@functools.lru_cache(maxsize=4096)
def unpacked_names(code: str) -> tuple[str, ...]:
    """The names of tuple targets bound to the items of one value that is no tuple of expressions (``k, v =
    kv.split([8, 8], dim=2)``, ``q, k, v = qkv.unbind(0)``): each name holds one item; () for any other line (one
    target, a starred target, a tuple of expressions: :func:`paired_names`, a name read on its own line,
    unparsable)."""
    found = _tuple_targets(code)
    if found is None or isinstance(found[1], (ast.Tuple, ast.List)):
        return ()
    return found[0]


_STATEMENT_LINES = 10
"""Most lines a statement spelled over several lines is read over (:func:`statement_text`)."""


@functools.lru_cache(maxsize=1024)
def statement_text(file: str, line: int) -> str | None:
    """The whole statement that starts at line ``line`` of ``file`` where it is spelled over several lines
    (``q, k, v = self.qkv(x).view(\n    B, …).split(…)``), dedented; None where that line is a statement of its
    own, or none parses within :data:`_STATEMENT_LINES` lines (:mod:`linecache`, as stack traces read it)."""
    lines = linecache.getlines(file)
    if not 0 < line <= len(lines):
        return None
    for end in range(line, min(line - 1 + _STATEMENT_LINES, len(lines)) + 1):
        text = textwrap.dedent("".join(lines[line - 1 : end]))
        try:
            ast.parse(text)
        except SyntaxError:
            continue
        return text if end > line else None
    return None


def is_augmented(code: str) -> bool:
    """Whether the line is an augmented assignment (``y += z``: eager runs it in place)."""
    return _AUGMENTED.match(code) is not None


@functools.lru_cache(maxsize=4096)
def root_call(code: str) -> tuple[str | None, int]:
    """The outermost operation of an assignment's right-hand side (``cat``, ``add``, a module
    attribute name…) and how often the assigned name is read there (0 when it is not); (None, 1)
    when unparsable or not a plain assignment.

    Cached: a graph repeats few distinct source lines (every iteration of a loop shares one)."""
    try:
        statement = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return None, 1
    if isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target, value = statement.target, statement.value
    elif isinstance(statement, ast.Assign):
        target, value = statement.targets[0], statement.value
    else:
        return None, 1
    if not isinstance(target, ast.Name):
        return None, 1
    name = target.id
    reads = sum(isinstance(node, ast.Name) and node.id == name for node in ast.walk(value))
    root: str | None = None
    if isinstance(value, ast.BinOp):
        target = _BINOPS.get(type(value.op))
        root = display_type(target) if target is not None else None
    elif isinstance(value, ast.Call):
        func = value.func
        root = func.attr if isinstance(func, ast.Attribute) else None
    return root, reads
