"""JSON export: the versioned to_dict schema, validated against the committed JSON Schema."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import torchscan
from torchscan.render.json import load_schema, to_json
from torchscan.report import SCHEMA_VERSION, Report

jsonschema = pytest.importorskip("jsonschema")

SCHEMA_FILE = Path(torchscan.__file__).parent / "schema" / "report.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_packaged_schema_is_the_committed_file_and_matches_the_version() -> None:
    schema = load_schema()
    assert schema == json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


@pytest.mark.parametrize("depth", [None, 1, 2])
def test_export_validates(
    resnet18_report: Report, validator: jsonschema.protocols.Validator, depth: int | None
) -> None:
    data = json.loads(resnet18_report.to_json(depth=depth))
    validator.validate(data)
    assert data == resnet18_report.to_dict(depth)
    assert len(data["layers"]) == len(resnet18_report.rows_to_depth(depth))


def test_diagnostics_and_functional_rows_validate(
    branchy_report: Report, validator: jsonschema.protocols.Validator
) -> None:
    validator.validate(json.loads(to_json(branchy_report, indent=None)))


def test_schema_rejects_a_broken_report(resnet18_report: Report, validator: jsonschema.protocols.Validator) -> None:
    data = resnet18_report.to_dict()
    data["layers"][0]["flops"] = -1
    del data["totals"]["macs"]
    assert len(list(validator.iter_errors(data))) == 2


def test_writes_path_and_file_object(branchy_report: Report, tmp_path: Path) -> None:
    text = branchy_report.to_json(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == json.loads(text)
    buffer = io.StringIO()
    branchy_report.to_json(buffer)
    assert buffer.getvalue() == text
