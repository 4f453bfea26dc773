"""JSON export of the report: ``report.to_dict()``, versioned and described by a committed JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from torchscan.report import Report


__all__ = ["load_schema", "to_json"]


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the export (``torchscan/schema/report.schema.json``)."""
    text = resources.files("torchscan").joinpath("schema", "report.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def to_json(
    report: Report, path_or_file: str | Path | TextIO | None = None, depth: int | None = None, indent: int | None = 2
) -> str:
    """``report.to_dict(depth)`` as JSON text, also written to ``path_or_file`` if given."""
    text = json.dumps(report.to_dict(depth), indent=indent) + "\n"
    if isinstance(path_or_file, (str, Path)):
        Path(path_or_file).write_text(text, encoding="utf-8")
    elif path_or_file is not None:
        path_or_file.write(text)
    return text
