"""Compare two reports: totals and per-row differences, rows matched by name (:func:`compare`,
exported as ``torchscan.compare``; this module is not named ``compare`` so that the function does not hide it).

For pruning, quantisation and architecture search: how model B differs from model A, layer by layer.
The result is a frozen :class:`~torchscan.records.Comparison`; :mod:`torchscan.render.diff` renders it.
"""

from __future__ import annotations

from torchscan.errors import InputError
from torchscan.records import Comparison, Row, RowDiff
from torchscan.report import Report
from torchscan.uncompiled import never_compiled

__all__ = ["compare"]


@never_compiled
def compare(a: Report, b: Report, *, labels: tuple[str, str] | None = None) -> Comparison:
    """Report ``b`` against report ``a``: every row of either, matched by name, and both totals.

    Each difference is ``B − A`` (``comparison.total_delta("params") == b.totals.params −
    a.totals.params``); a row only one report has counts 0 on the other side. The rows keep the tree
    order of ``b``, each row only ``a`` has placed after the row that precedes it in ``a``.
    ``labels`` name the two sides (default: each report's model class, or ``A``/``B`` when those are equal).
    """
    for side, value in (("a", a), ("b", b)):
        if not isinstance(value, Report):
            what = f"the model {type(value).__name__}" if hasattr(value, "forward") else type(value).__name__
            raise InputError(
                f"compare() takes two reports, got {what} as {side}: analyse each model first, "
                "compare(crawl_module(model_a, shape), crawl_module(model_b, shape)) (a report with named sizes: "
                "its report at one size, report.at(...))"
            )
    if labels is None:
        names = (a.context.model, b.context.model)
        labels = names if names[0] != names[1] else ("A", "B")
    return Comparison(
        label_a=labels[0],
        label_b=labels[1],
        context_a=a.context,
        context_b=b.context,
        totals_a=a.totals,
        totals_b=b.totals,
        rows=_merged(a.rows, b.rows),
        activation_peak_a=a.memory.activation_peak_bytes if a.memory is not None else None,
        activation_peak_b=b.memory.activation_peak_bytes if b.memory is not None else None,
    )


def _merged(rows_a: tuple[Row, ...], rows_b: tuple[Row, ...]) -> tuple[RowDiff, ...]:
    """The union of both row lists by name, as a tree walked in pre-order.

    A row's parent is B's where B has the row, else A's. Siblings keep B's order; each A-only
    sibling follows the sibling that precedes it in A (:func:`_sibling_order`). A row whose parent is
    in neither report hangs from the root.
    """
    by_name_a = {row.name: row for row in rows_a}
    by_name_b = {row.name: row for row in rows_b}
    given = {name: row.parent for name, row in by_name_a.items()} | {n: r.parent for n, r in by_name_b.items()}
    parent: dict[str, str | None] = {name: up if up in given and up != name else None for name, up in given.items()}

    def children(rows: tuple[Row, ...]) -> dict[str | None, list[str]]:
        found: dict[str | None, list[str]] = {}
        for row in rows:
            found.setdefault(parent[row.name], []).append(row.name)
        return found

    kids_a, kids_b = children(rows_a), children(rows_b)
    merged: list[RowDiff] = []
    stack: list[str | None] = [None]  # None: the root
    visited: set[str] = set()
    while stack:
        name = stack.pop()
        if name is not None:
            merged.append(RowDiff(name, by_name_a.get(name), by_name_b.get(name)))
        siblings = _sibling_order(kids_a.get(name, []), kids_b.get(name, []))
        fresh = [child for child in siblings if child not in visited]
        visited.update(fresh)
        stack.extend(reversed(fresh))
    stray = [name for name in parent if name not in visited]  # parents in a cycle: never in real reports
    merged += [RowDiff(name, by_name_a.get(name), by_name_b.get(name)) for name in stray]
    return tuple(merged)


def _sibling_order(names_a: list[str], names_b: list[str]) -> list[str]:
    """``names_b`` with each name only ``names_a`` has inserted after its predecessor in ``names_a``
    that ``names_b`` has too (at the front when there is none); no name twice."""
    in_b = set(names_b)
    after: dict[str | None, list[str]] = {}
    anchor: str | None = None
    for name in dict.fromkeys(names_a):
        if name in in_b:
            anchor = name
        else:
            after.setdefault(anchor, []).append(name)
    order = list(after.get(None, []))
    for name in dict.fromkeys(names_b):
        order += [name, *after.get(name, [])]
    return order
