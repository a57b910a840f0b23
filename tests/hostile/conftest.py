"""Hostile input: run the CLI in this process (fast, for thousands of cases) or for real, and
judge every outcome by the contract of DESIGN §2: exit 0, 1 or 2 with a readable message, never
a traceback, never a hang.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import re
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import pytest

from policy_engine import cel
from policy_engine.cli import cli
from tests.conftest import CliResult, run_policy_engine, write_files
from tests.git.conftest import pack, repo

__all__ = ["pack", "repo"]  # the real git repositories of tests/git, for the git and threat tests

AS_OF = "2025-06-30T00:00:00Z"
# cel-python raises the recursion limit when it builds its first environment. Do it now, before
# Hypothesis records the limit, or it warns that a test changed it.
cel.PythonBackend()
# A test still running after this long hangs: the whole run stops with every thread's stack.
# (Each generated case also has a Hypothesis deadline; this catches the case that never ends.)
HANG_SECONDS = 300.0

# The forms a line of stderr may take (DESIGN §9 "Input errors", plus usage errors and warnings).
_LOCATED = re.compile(r"^\S.*?:\d+:\d+: \S")
_SUMMARY = re.compile(r"^\d+ input errors?; nothing was (evaluated|written)\.$")
_PLAIN = re.compile(r"^(error|warning): \S")
MAX_LINE = 1000  # a message that quotes a whole hostile value is not readable


@contextlib.contextmanager
def hang_watchdog(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Abort the test process with every thread's traceback if the body does not finish."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    """Every test here is bounded: a hang aborts the run with the stacks, it never stalls CI."""
    with hang_watchdog():
        yield


def run_in_process(*args: str | Path) -> CliResult:
    """The CLI through click, as ``policy-engine ARGS`` runs it, without starting a process.

    ``_run`` maps every outcome to an exit code and ends with ``sys.exit``; click's own usage
    errors are shown and mapped the way standalone mode does.
    """
    out, err = io.StringIO(), io.StringIO()
    code: int
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main([str(a) for a in args], prog_name="policy-engine", standalone_mode=False)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except click.ClickException as exc:
            exc.show(file=sys.stderr)
            code = exc.exit_code
    return CliResult(code, out.getvalue(), err.getvalue())


def run_for_real(*args: str | Path, timeout: float = HANG_SECONDS) -> CliResult:
    return run_policy_engine(*args, timeout=timeout)


def assert_contract(result: CliResult, *, report: bool = True) -> None:
    """Exit 0, 1 or 2; no traceback; exit 2 says what is wrong in the forms DESIGN §9 gives,
    with nothing on stdout; exits 0 and 1 print a JSON report (when ``report``) that agrees."""
    code, stdout, stderr = result
    assert code in (0, 1, 2), f"exit {code}:\n{stderr[-3000:]}"
    assert "Traceback" not in stderr + stdout, stderr[-3000:]
    assert "internal error" not in stderr, stderr[-3000:]
    for line in stderr.splitlines():
        assert len(line) <= MAX_LINE, f"unreadably long message ({len(line)} characters): {line[:300]}..."
    if code == 2:
        assert stdout == "", "invalid input must not produce a report"
        lines = stderr.splitlines()
        assert lines, "exit 2 without a message"
        for line in lines:
            assert _LOCATED.match(line) or _SUMMARY.match(line) or _PLAIN.match(line), (
                f"not a readable error line: {line!r}\n{stderr[-2000:]}"
            )
        if any(_LOCATED.match(line) for line in lines):
            assert any(_SUMMARY.match(line) for line in lines), stderr[-2000:]
        return
    if report:
        data = json.loads(stdout)
        assert data["summary"]["exit_code"] == code


def check_args(root: Path, *extra: str | Path) -> list[str | Path]:
    return ["check", root, "--as-of", AS_OF, "--format", "json", "--no-cache", *extra]


class Workspace:
    """One portfolio directory, rewritten for each generated case (faster than a new one)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: dict[str, Any] = {}  # what each file holds, so unchanged ones are not rewritten

    def reset(self, files: Mapping[str, Any]) -> Path:
        """Exactly ``files`` under the root: stale files are removed, changed ones rewritten."""
        wanted = {name: content for name, content in files.items() if content is not None}
        if self.root.exists():
            for path in sorted(self.root.rglob("*"), reverse=True):
                relative = path.relative_to(self.root).as_posix()
                if path.is_symlink() or path.is_file():
                    if relative not in wanted:
                        path.unlink()
                        self.written.pop(relative, None)
                elif not any(name.startswith(relative + "/") for name in wanted):
                    shutil.rmtree(path)
        self.root.mkdir(parents=True, exist_ok=True)
        changed = {
            name: content
            for name, content in wanted.items()
            if self.written.get(name) != content or not (self.root / name).is_file()
        }
        write_files(self.root, changed)
        self.written.update(changed)
        return self.root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("hostile") / "portfolio")


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> cel.Budget:
    """A small CEL budget, so that a generated policy that runs long costs little time."""
    budget = cel.Budget(expression=0.25, policy=0.5)
    monkeypatch.setattr(cel, "DEFAULT_BUDGET", budget)
    return budget
