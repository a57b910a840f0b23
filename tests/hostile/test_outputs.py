"""Reports are written atomically: a run that fails (exit 2 or 3, or an interrupt) leaves every
existing report file exactly as it was; a run that succeeds, or ends with blocking findings
(exit 1), replaces them. No temporary file is left behind either way.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from policy_engine import reporters
from tests.conftest import EXAMPLE, build_portfolio
from tests.hostile.conftest import AS_OF, run_for_real, run_in_process

OLD = "previous report, must survive a failed run\n"
FORMATS = {"json": "report.json", "sarif": "report.sarif", "junit": "report.xml", "markdown": "report.md"}


def _reports(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / file for name, file in FORMATS.items()}
    for path in paths.values():
        path.write_text(OLD, encoding="utf-8")
    return paths


def _format_args(paths: dict[str, Path]) -> list[str]:
    return [arg for name, path in paths.items() for arg in ("--format", f"{name}={path}")]


def _untouched(paths: dict[str, Path]) -> None:
    for path in paths.values():
        assert path.read_text(encoding="utf-8") == OLD, path
    _no_leftovers(next(iter(paths.values())).parent)


def _no_leftovers(directory: Path) -> None:
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_input_error_keeps_existing_reports(tmp_path: Path) -> None:
    root = build_portfolio(tmp_path / "p", files={"models/m.yaml": "id: m\nowner_team: [\n"})
    paths = _reports(tmp_path / "out")
    code, stdout, stderr = run_for_real("check", root, "--as-of", AS_OF, *_format_args(paths))
    assert code == 2, stderr
    assert stdout == ""
    _untouched(paths)


def test_usage_error_keeps_existing_reports(tmp_path: Path) -> None:
    paths = _reports(tmp_path / "out")
    code, _, stderr = run_for_real("check", EXAMPLE, "--as-of", "yesterday", *_format_args(paths))
    assert code == 2, stderr
    _untouched(paths)


def test_internal_error_in_a_later_reporter_keeps_every_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything is rendered before anything is replaced: the JSON report, rendered fine, is
    not written when the SARIF reporter fails after it."""
    monkeypatch.setitem(reporters.REPORTERS, "sarif", "tests.hostile.test_outputs:broken_reporter")
    paths = _reports(tmp_path / "out")
    code, stdout, stderr = run_in_process("check", EXAMPLE, "--as-of", AS_OF, *_format_args(paths))
    assert code == 3
    assert "internal error: RuntimeError: reporter failed" in stderr
    assert stdout == ""
    _untouched(paths)


def broken_reporter(report: object) -> str:
    raise RuntimeError("reporter failed")


def test_interrupt_while_writing_keeps_every_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace
    calls: list[str] = []

    def interrupted(source: str, target: str) -> None:
        calls.append(target)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    paths = _reports(tmp_path / "out")
    code, _, _ = run_in_process("check", EXAMPLE, "--as-of", AS_OF, *_format_args(paths))
    monkeypatch.setattr(os, "replace", real_replace)
    assert code == 130
    assert calls
    _untouched(paths)


def test_unwritable_destination_is_a_usage_error_and_keeps_the_others(tmp_path: Path) -> None:
    paths = _reports(tmp_path / "out")
    directory = tmp_path / "out" / "a-directory"
    directory.mkdir()
    code, stdout, stderr = run_for_real(
        "check", EXAMPLE, "--as-of", AS_OF, *_format_args(paths), "--format", f"text={directory}"
    )
    assert code == 2
    assert f"error: cannot write {directory}: is a directory" in stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    _untouched(paths)


@pytest.mark.parametrize("blocking", [False, True], ids=["exit-0", "exit-1"])
def test_success_and_blocking_findings_replace_reports(tmp_path: Path, blocking: bool) -> None:
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root)
    paths = _reports(tmp_path / "out")
    pack = () if blocking else ("--no-builtin",)
    code, stdout, stderr = run_for_real("check", root, "--as-of", AS_OF, *pack, *_format_args(paths))
    assert code == (1 if blocking else 0), stderr
    assert stdout == ""  # every format went to a file
    report = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert report["summary"]["exit_code"] == code
    for path in paths.values():
        assert path.read_text(encoding="utf-8") != OLD
        assert path.stat().st_mode & 0o777 == 0o644 or os.name != "posix", oct(path.stat().st_mode)
    _no_leftovers(tmp_path / "out")


def test_a_new_report_gets_ordinary_permissions(tmp_path: Path) -> None:
    """Written through a private temporary file, the report still ends up readable by others."""
    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "fresh" / "report.json"
    code, _, stderr = run_for_real(
        "check",
        build_portfolio(tmp_path / "p"),
        "--as-of",
        AS_OF,
        "--no-builtin",
        "--format",
        f"json={target}",
    )
    assert code == 0, stderr
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_residency_import_keeps_its_output_on_input_errors(tmp_path: Path) -> None:
    source = tmp_path / "allocation.json"
    source.write_text("{not json", encoding="utf-8")
    output = tmp_path / "residency.jsonl"
    output.write_text(OLD, encoding="utf-8")
    code, _, stderr = run_for_real(
        "residency",
        "import",
        "--from",
        "opencost",
        source,
        "-o",
        output,
        "--label",
        "app",
        "--currency",
        "USD",
    )
    assert code == 2, stderr
    assert output.read_text(encoding="utf-8") == OLD
