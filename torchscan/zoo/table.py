"""The results of a sweep as a table — Markdown, or one self-contained HTML page sortable by any column —
and a one-paragraph summary (rows, failures by reason). Strings only: the caller writes them."""

from __future__ import annotations

import collections
import html
from collections.abc import Callable, Sequence

from torchscan.errors import InputError
from torchscan.records.frozen import frozen_record
from torchscan.version import __version__
from torchscan.zoo.records import ZooRow

__all__ = ["COLUMNS", "DEFAULT_COLUMNS", "parse_columns", "render_html", "render_markdown", "summarise"]


@frozen_record
class _Column:
    header: str
    text: Callable[[ZooRow], str]
    value: Callable[[ZooRow], float | str | None]
    numeric: bool = True


def _scaled(field: str, scale: float, digits: int) -> _Column:
    """A count or size divided by ``scale``, ``digits`` decimals; empty when the row has none."""

    def text(row: ZooRow) -> str:
        number = getattr(row, field)
        return "" if number is None else f"{number / scale:.{digits}f}"

    return _Column("", text, lambda row: getattr(row, field))


def _named(header: str, column: _Column) -> _Column:
    return _Column(header, column.text, column.value, column.numeric)


def _complete(row: ZooRow) -> str:
    if not row.ok:
        return f"failed ({row.error_type})"
    return "yes" if row.complete else f"no ({row.unknown_ops} ops)"


def _text(field: str, header: str) -> _Column:
    return _Column(header, lambda row: str(getattr(row, field) or ""), lambda row: getattr(row, field) or "", False)


COLUMNS: dict[str, _Column] = {
    "model": _text("spec", "Model"),
    "input": _text("input", "Input"),
    "params": _named("Params (M)", _scaled("params", 1e6, 2)),
    "flops": _named("GFLOPs", _scaled("flops", 1e9, 2)),
    "macs": _named("GMACs", _scaled("macs", 1e9, 2)),
    "dmas": _named("GDMAs", _scaled("dmas", 1e9, 2)),
    "complete": _Column("Complete", _complete, _complete, False),
    "model_size": _named("Model size (MiB)", _scaled("model_bytes", 2**20, 1)),
    "activation_peak": _named("Activation peak (MiB)", _scaled("activation_peak_bytes", 2**20, 1)),
    "train_sgd": _named("Training peak, SGD (MiB)", _scaled("train_peak_sgd_bytes", 2**20, 1)),
    "train_adam": _named("Training peak, Adam (MiB)", _scaled("train_peak_adam_bytes", 2**20, 1)),
    "capture": _text("capture", "Capture"),
    "diagnostics": _Column(
        "Diagnostics", lambda row: "" if row.diagnostics is None else str(row.diagnostics), lambda row: row.diagnostics
    ),
    "time": _named("Analysis (s)", _scaled("analysis_seconds", 1, 3)),
    "error": _text("error", "Error"),
}
"""Column name -> how it shows a row (numbers: params in millions, counts in G, bytes in MiB)."""

DEFAULT_COLUMNS = ("model", "input", "params", "flops", "macs", "dmas", "complete", "time")


def parse_columns(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Column names from ``"model,params,flops"`` (or a sequence); :class:`InputError` names the valid ones."""
    if text is None:
        return DEFAULT_COLUMNS
    names = tuple(part.strip() for part in (text.split(",") if isinstance(text, str) else text) if part.strip())
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or not names:
        raise InputError(f"unknown column(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(COLUMNS)}")
    return names


def _cell(text: str) -> str:
    """``text`` safe in a Markdown table cell (pipes escaped, one line)."""
    return " ".join(text.split()).replace("|", "\\|")


def render_markdown(rows: Sequence[ZooRow], columns: str | Sequence[str] | None = None) -> str:
    """A Markdown table, one line per row in the order given; numbers right-aligned."""
    chosen = [COLUMNS[name] for name in parse_columns(columns)]
    lines = [
        "| " + " | ".join(column.header for column in chosen) + " |",
        "|" + "|".join("---:" if column.numeric else "---" for column in chosen) + "|",
    ]
    lines += ["| " + " | ".join(_cell(column.text(row)) for column in chosen) + " |" for row in rows]
    return "\n".join(lines) + "\n"


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { position: sticky; top: 0; background: #f4f4f4; cursor: pointer; user-select: none; text-align: left; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
th[aria-sort="ascending"]::after { content: " ▴"; }
th[aria-sort="descending"]::after { content: " ▾"; }
tr.failed td { color: #a00; }
"""

_SCRIPT = """
document.querySelectorAll("th").forEach((header, index) => header.addEventListener("click", () => {
  const body = header.closest("table").tBodies[0];
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  header.parentNode.querySelectorAll("th").forEach((other) => other.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const numeric = header.classList.contains("num");
  const key = (row) => row.cells[index].dataset.value ?? "";
  const rows = Array.from(body.rows).sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    if (x === "" || y === "") return (x === "") - (y === "");
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
}));
"""


def render_html(
    rows: Sequence[ZooRow], columns: str | Sequence[str] | None = None, title: str = "torchscan zoo"
) -> str:
    """One self-contained HTML page: the summary and the table; click a header to sort by it (empty cells
    last), exact numbers in each cell's ``data-value``. No external file, nothing fetched."""
    chosen = [COLUMNS[name] for name in parse_columns(columns)]
    head = "".join(f'<th class="{"num" if c.numeric else "text"}">{html.escape(c.header)}</th>' for c in chosen)
    body = []
    for row in rows:
        cells = []
        for column in chosen:
            value = column.value(row)
            data = "" if value is None else html.escape(str(value), quote=True)
            kind = "num" if column.numeric else "text"
            cells.append(f'<td class="{kind}" data-value="{data}">{html.escape(column.text(row))}</td>')
        body.append(f'<tr class="{row.status}">{"".join(cells)}</tr>')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(summarise(rows))}</p>\n"
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n"
        f"<p><small>torchscan {html.escape(__version__)}</small></p>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def summarise(rows: Sequence[ZooRow]) -> str:
    """``N rows: X ok (Y complete), Z failed (Timeout 1, Crash 1)``."""
    ok = [row for row in rows if row.ok]
    reasons = collections.Counter(row.error_type for row in rows if not row.ok)
    failed = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
    complete = sum(bool(row.complete) for row in ok)
    text = f"{len(rows)} rows: {len(ok)} ok ({complete} complete), {len(rows) - len(ok)} failed"
    return text + (f" ({failed})" if failed else "")
