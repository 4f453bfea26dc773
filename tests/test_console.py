"""The command's entry point (torchscan.console): its process's collector, and the caller's from Python."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from torchscan.cli import main

_MODEL = """
from torch import nn


def small():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
"""


@pytest.fixture
def spec(tmp_path: Path) -> str:
    path = tmp_path / "console_model.py"
    path.write_text(_MODEL, encoding="utf-8")
    return f"{path}:small"


def test_the_command_called_from_python_leaves_the_caller_s_collector_as_found(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    frozen = gc.get_freeze_count()
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            assert main([spec, "--input-shape", "3,8,8", "-q"]) == 0
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
    assert gc.get_freeze_count() == frozen
    assert "Total params: 402" in capsys.readouterr().out


def test_the_command_s_process_imports_with_the_collector_off_and_freezes_what_it_imported(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its own process: ``import torchscan`` imports no torch; the console's run prints what the command prints
    from Python, and leaves the collector on with the imports frozen."""
    script = (
        "import gc, json, sys\n"
        "import torchscan\n"
        "bare = 'torch' in sys.modules\n"
        "from torchscan.console import main\n"
        f"status = main([{spec!r}, '--input-shape', '3,8,8', '--format', 'json', '-q'])\n"
        "print(json.dumps([status, bare, gc.isenabled(), gc.get_freeze_count()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    *table, last = done.stdout.splitlines()
    status, bare, enabled, frozen = json.loads(last)
    assert (status, bare, enabled) == (0, False, True)
    assert frozen > 100_000  # torch's objects (and the analysis's modules)
    assert main([spec, "--input-shape", "3,8,8", "--format", "json", "-q"]) == 0
    assert json.loads("\n".join(table)) == json.loads(capsys.readouterr().out)
