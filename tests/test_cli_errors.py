"""CLI errors: a user mistake is one line on stderr and exit status 2, a bug one line and 1; ``--traceback``
shows the traceback. ``-o`` is checked before the model is built; the real-forward flags reach crawl_module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import torchscan
import torchscan.cli
from torchscan.cli import main, parse_size
from torchscan.errors import TorchscanError

_MODELS = """
from pathlib import Path

import torch
from torch import nn


def small():
    Path(__file__).with_name("factory_called").touch()  # the tests check that a bad -o stops before this
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def raises():
    raise ValueError("boom from the factory")


class Projection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(5, 2))

    def forward(self, x):
        return x @ self.weight  # a (1, 3) input does not fit: ShapeError names this line


def wrong_width():
    return Projection()


class Checked(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 2)

    def forward(self, x):
        if x.shape[-1] != 8:
            raise ValueError(f"Checked needs 8 features, got {x.shape[-1]}")
        return self.linear(x)


def checked():
    with Path(__file__).with_name("checked_built").open("a") as built:
        built.write("built\\n")  # one line per model built: the test counts them
    return Checked()
"""


@pytest.fixture
def models(tmp_path: Path) -> Path:
    path = tmp_path / "cli_models.py"
    path.write_text(_MODELS, encoding="utf-8")
    return path


def _called(models: Path) -> bool:
    return models.with_name("factory_called").exists()


def _error(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 2) -> str:
    """Run the CLI in-process; check the exit status, one line on stderr, no traceback; return that line."""
    assert main([*argv, "-q"]) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert lines[0].startswith("torchscan: ")
    return lines[0]


def test_a_factory_that_raises_names_the_factory_and_the_error(models: Path, capsys) -> None:
    line = _error(capsys, f"{models}:raises")
    assert line.startswith(f"torchscan: error: factory {models}:raises raised ValueError: boom from the factory")
    assert f"{models}, line 14" in line  # where in the user's file


def test_a_file_that_fails_to_import(tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_for_torchscan_tests\n\n\ndef make():\n    pass\n")
    line = _error(capsys, f"{broken}:make")
    assert f"importing {broken} raised ModuleNotFoundError" in line and "no_such_module_for_torchscan_tests" in line
    assert f"{broken}, line 1" in line
    assert not any(getattr(module, "__file__", None) == str(broken) for module in list(sys.modules.values()))


def test_a_file_with_a_syntax_error(tmp_path: Path, capsys) -> None:
    broken = tmp_path / "syntax.py"
    broken.write_text("def make(:\n    pass\n")
    assert "raised SyntaxError" in _error(capsys, f"{broken}:make")


def test_a_module_whose_code_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (tmp_path / "raising_pkg_for_cli.py").write_text("raise RuntimeError('module-level failure')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    line = _error(capsys, "raising_pkg_for_cli:make")
    assert "importing module 'raising_pkg_for_cli' raised RuntimeError: module-level failure" in line


def test_a_missing_module(capsys) -> None:
    line = _error(capsys, "no_such_package_xyz.mod:small")
    expected = "cannot import module 'no_such_package_xyz.mod': No module named 'no_such_package_xyz'"
    assert line == f"torchscan: error: {expected}"


def test_an_unknown_model_name(capsys) -> None:
    line = _error(capsys, "resnet_that_does_not_exist")
    assert "unknown model 'resnet_that_does_not_exist'" in line or "torchvision" in line


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        (["3", "1000000000", "1000000000"], "(1, 3, 1000000000, 1000000000) and dtype float32 is too large"),
        ([str(2**70)], f"dimension 0 ({2**70}) overflows"),
        (["3", "-2"], "has a dimension < 1"),
        (["3", "0"], "has a dimension < 1"),
    ],
)
def test_bad_input_shapes_stop_before_the_model_is_built(shape: list[str], match: str, models: Path, capsys) -> None:
    line = _error(capsys, f"{models}:small", "--input-shape", *shape)
    assert line.startswith("torchscan: error: input 0 ") and match in line
    assert not _called(models)


def test_a_shape_the_model_rejects_is_one_line(models: Path, capsys) -> None:
    line = _error(capsys, f"{models}:wrong_width", "--input-shape", "3")  # ShapeError's message has 3 lines
    assert "rejected input shapes" in line and " | at File " in line and "x @ self.weight" in line


def test_a_check_of_the_models_code_is_one_line_and_builds_no_real_weights(models: Path, capsys) -> None:
    """The model's own check rejects the input on meta weights as it would on real ones: the command says so
    (exit status 2) without building the model again with real weights for a real forward (it did: a large model
    cost its whole size in memory to report its own error)."""
    line = _error(capsys, f"{models}:checked", "--input-shape", "5")
    assert line.startswith("torchscan: error: Checked rejected the input (x (1, 5) float32)")
    assert "ValueError: Checked needs 8 features, got 5 | at File " in line
    assert models.with_name("checked_built").read_text().splitlines() == ["built"]


def test_output_into_a_missing_folder(models: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "missing" / "out.json"
    line = _error(capsys, f"{models}:small", "--input-shape", "3", "8", "8", "-o", str(target))
    assert line == f"torchscan: error: -o {target}: folder {target.parent} does not exist"
    assert not _called(models) and not target.parent.exists()


def test_output_is_a_directory(models: Path, tmp_path: Path, capsys) -> None:
    line = _error(capsys, f"{models}:small", "--input-shape", "3", "8", "8", "-o", str(tmp_path))
    assert line == f"torchscan: error: -o {tmp_path}: is a directory, give a file path"
    assert not _called(models)


def test_output_is_an_unwritable_file(models: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "locked.json"
    target.write_text("keep me")
    target.chmod(0o444)
    try:
        if os.access(target, os.W_OK):
            pytest.skip("running as root: a read-only file is still writable")
        line = _error(capsys, f"{models}:small", "--input-shape", "3", "8", "8", "-o", str(target))
        assert line == f"torchscan: error: -o {target}: file is not writable (permission denied)"
        assert not _called(models) and target.read_text() == "keep me"
    finally:
        target.chmod(0o644)


def test_output_in_an_unwritable_folder(models: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        line = _error(capsys, f"{models}:small", "--input-shape", "3", "8", "8", "-o", str(folder / "out.csv"))
        assert "permission denied" in line and not _called(models)
    finally:
        folder.chmod(0o755)


def test_an_unwritable_output_as_seen_by_os_access(models: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The same checks where chmod cannot take write access away (root): os.access says no."""
    target = tmp_path / "locked.json"
    target.write_text("keep me")
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == target else access(path, mode))
    line = _error(capsys, f"{models}:small", "--input-shape", "3", "8", "8", "-o", str(target))
    assert line == f"torchscan: error: -o {target}: file is not writable (permission denied)"
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else access(path, mode))
    line = _error(capsys, f"{models}:small", "--input-shape", "3", "8", "8", "-o", str(tmp_path / "new.json"))
    assert line.endswith(f"cannot create a file in {tmp_path} (permission denied)")
    assert not _called(models) and target.read_text() == "keep me" and not (tmp_path / "new.json").exists()


def test_a_good_output_is_written_only_after_the_analysis(models: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    assert main([f"{models}:raises", "-o", str(target), "-q"]) == 2
    assert target.read_text() == "old"  # neither truncated nor replaced by a failed run
    assert main([f"{models}:small", "--input-shape", "3", "8", "8", "--format", "json", "-o", str(target), "-q"]) == 0
    assert '"totals"' in target.read_text() and _called(models)
    assert capsys.readouterr().out == ""


def test_traceback_flag_shows_the_whole_chain(models: Path, capsys) -> None:
    assert main([f"{models}:raises", "-q", "--traceback"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: boom from the factory" in err and "raised ValueError" in err
    assert len(err.splitlines()) > 5


def test_an_internal_error_is_one_line_with_exit_1(models: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("internal\ndetail")

    monkeypatch.setattr(torchscan.cli, "crawl_module", broken)
    line = _error(capsys, f"{models}:small", "--input-shape", "3", "8", "8", status=1)
    assert line.startswith("torchscan: internal error: KeyError: 'internal") and "--traceback" in line
    assert "report" in line
    assert main([f"{models}:small", "--input-shape", "3", "8", "8", "-q", "--traceback"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_are_one_line(models: Path, capsys) -> None:
    for argv in (["--input-shape", "2.5"], ["--real-forward-limit", "4 parsecs"], ["--bogus"]):
        with pytest.raises(SystemExit) as exit_info:
            main([f"{models}:small", *argv])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("torchscan: error: ")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4GiB", 4 * 2**30),
        ("512MiB", 512 * 2**20),
        ("512mib", 512 * 2**20),
        ("1.5GiB", 3 * 2**29),
        ("2GB", 2 * 10**9),
        ("100kB", 100_000),
        ("1000", 1000),
        ("7B", 7),
        ("0", 0),
        (" 3 TiB ", 3 * 2**40),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "-1GiB", "4 parsecs", "1e9", "4GiBs", "1.2.3MB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|unit"):
        parse_size(text)


_UNSET: Any = object()


def _recording_crawl(seen: dict[str, Any]) -> Any:
    """A crawl_module that takes the real-forward keywords, records them and analyses without them."""
    real = torchscan.cli.crawl_module

    def crawl(model: Any, *args: Any, real_forward: Any = _UNSET, real_forward_limit: Any = _UNSET, **kw: Any):
        given = {"real_forward": real_forward, "real_forward_limit": real_forward_limit}
        seen.update({key: value for key, value in given.items() if value is not _UNSET})
        return real(model, *args, **kw)

    return crawl


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {}),  # only the flags the user set are passed
        (["--no-real-forward"], {"real_forward": False}),
        (["--real-forward-limit", "512MiB"], {"real_forward_limit": 512 * 2**20}),
        (["--real-forward-limit", "1000"], {"real_forward_limit": 1000}),
    ],
)
def test_real_forward_flags_reach_crawl_module(
    flags: list[str], expected: dict[str, Any], models: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(torchscan.cli, "crawl_module", _recording_crawl(seen))
    assert main([f"{models}:small", "--input-shape", "3", "8", "8", "-q", *flags]) == 0
    assert seen == expected
    assert capsys.readouterr().err == ""


def test_real_forward_flags_with_the_installed_crawl_module(models: Path, capsys) -> None:
    argv = [f"{models}:small", "--input-shape", "3", "8", "8", "-q", "--no-real-forward"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""


def test_output_path_check_does_not_create_the_file(tmp_path: Path) -> None:
    target = tmp_path / "new.txt"
    assert torchscan.cli.check_output_path(str(target)) == target and not target.exists()
    with pytest.raises(TorchscanError, match="is a directory"):
        torchscan.cli.check_output_path(str(tmp_path / "sub") + "/")


def test_python_dash_m_torchscan(models: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(torchscan.__file__).resolve().parents[1])}
    for argv, message in [
        ([f"{models}:raises"], "raised ValueError: boom from the factory"),
        ([f"{models}:small", "--input-shape", "3", "8", "8", "-o", str(tmp_path / "no" / "x.csv")], "does not exist"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "torchscan", *argv, "-q"], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 2 and result.stdout == ""
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("torchscan: error: ") and message in result.stderr
    assert not _called(models)  # the bad -o stopped the second run before the factory
