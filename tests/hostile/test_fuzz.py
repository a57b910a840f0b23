"""Property-based tests: generated hostile portfolios, policies, exceptions and residency files.

Whatever the files hold, ``policy-engine`` ends with exit 0, 1 or 2 and a readable message,
never a traceback and never a hang (``conftest.assert_contract``). Most cases run in this
process through the same click command the console script runs (``run_in_process``); a smaller
sample runs as real processes.

Cases per run (``max_examples``; Hypothesis stops early only if a strategy runs out of
distinct cases, which these do not):

=====================================  ========
portfolio, model and config files           280
policy files (generated CEL)                240
exceptions files                            160
residency files                             160
raw bytes in any file                       100
mutated example, built-in pack               30
``validate`` on mutated files                30
real subprocesses (each twice)               12
total                                     1,012
=====================================  ========

Each case has a deadline (``DEADLINE``), and a watchdog (``conftest.HANG_SECONDS``) aborts the
run with every thread's stack if a case never ends.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import EXAMPLE
from tests.hostile import strategies as gen
from tests.hostile.conftest import (
    Workspace,
    assert_contract,
    check_args,
    run_for_real,
    run_in_process,
)

DEADLINE = timedelta(seconds=10)  # per case; they take milliseconds (the built-in pack ~0.1 s)
_COMMON = {
    "deadline": DEADLINE,
    "database": None,  # nothing written into the repository
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
BACKENDS = st.sampled_from(["cpp", "cpp", "cpp", "cpp", "python"])
# Some generated values are large on purpose; Hypothesis warns when it prints them.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


@pytest.fixture(scope="module")
def probe_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("probe-pack")
    for name, text in gen.PROBE_PACK.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def _valid_files() -> dict[str, Any]:
    return {
        "portfolio.yaml": gen.dump_yaml(gen.PORTFOLIO),
        "models/clf.yaml": gen.dump_yaml(gen.MODEL),
        "exceptions.yaml": gen.dump_yaml(gen.EXCEPTIONS),
    }


def _check(workspace: Workspace, files: dict[str, Any], pack: Path, backend: str = "cpp") -> None:
    root = workspace.reset(files)
    result = run_in_process(*check_args(root, "--no-builtin", "--policies", pack, "--cel-backend", backend))
    assert_contract(result)


def test_the_unmutated_files_are_valid(workspace: Workspace, probe_pack: Path) -> None:
    """The generators start from documents the engine accepts, so mutations test what they change."""
    root = workspace.reset(
        {
            **_valid_files(),
            "models/nested/other.yml": gen.dump_yaml(gen.OTHER_MODEL),
            ".policy-engine.yaml": gen.dump_yaml(gen.CONFIG),
            "policies/p.yaml": gen.dump_yaml(gen.POLICY),
        }
    )
    result = run_in_process(*check_args(root, "--no-builtin", "--policies", probe_pack))
    assert result.code in (0, 1), result.stderr
    assert_contract(result)


_SLOTS = {
    "portfolio.yaml": gen.PORTFOLIO,
    "models/clf.yaml": gen.MODEL,
    "models/nested/other.yml": gen.OTHER_MODEL,
    ".policy-engine.yaml": gen.CONFIG,
}


@settings(max_examples=280, **_COMMON)
@given(
    slot=st.sampled_from(sorted(_SLOTS)),
    data=st.data(),
    backend=BACKENDS,
)
def test_hostile_portfolio_files(
    workspace: Workspace, probe_pack: Path, small_budget: Any, slot: str, data: st.DataObject, backend: str
) -> None:
    files = {**_valid_files(), ".policy-engine.yaml": gen.dump_yaml(gen.CONFIG)}
    files[slot] = data.draw(gen.hostile_yaml(_SLOTS[slot]), label=slot)
    _check(workspace, files, probe_pack, backend)


@settings(max_examples=240, **_COMMON)
@given(policies=st.lists(gen.policy_text(), min_size=1, max_size=2), backend=BACKENDS)
def test_hostile_policy_files(
    workspace: Workspace, probe_pack: Path, small_budget: Any, policies: list[str | bytes], backend: str
) -> None:
    files = _valid_files()
    for index, text in enumerate(policies):
        files[f"policies/p{index}.yaml"] = text
    _check(workspace, files, probe_pack, backend)


@settings(max_examples=160, **_COMMON)
@given(exceptions=gen.exceptions_text(), backend=BACKENDS)
def test_hostile_exceptions_files(
    workspace: Workspace, probe_pack: Path, small_budget: Any, exceptions: str | bytes, backend: str
) -> None:
    _check(workspace, {**_valid_files(), "exceptions.yaml": exceptions}, probe_pack, backend)


@settings(max_examples=160, **_COMMON)
@given(residency=gen.residency_file(), backend=BACKENDS)
def test_hostile_residency_files(
    workspace: Workspace,
    probe_pack: Path,
    small_budget: Any,
    residency: tuple[str, str | bytes],
    backend: str,
) -> None:
    name, content = residency
    _check(workspace, {**_valid_files(), name: content}, probe_pack, backend)


_ANY_FILE = [
    "portfolio.yaml",
    "models/clf.yaml",
    "exceptions.yaml",
    ".policy-engine.yaml",
    "policies/p.yaml",
    "residency/r.jsonl",
    "residency/r.csv",
]


@settings(max_examples=100, **_COMMON)
@given(
    name=st.sampled_from(_ANY_FILE),
    content=st.one_of(st.binary(max_size=400), st.text(max_size=400), st.sampled_from(gen.SNIPPETS)),
)
def test_raw_bytes_in_any_file(
    workspace: Workspace, probe_pack: Path, small_budget: Any, name: str, content: str | bytes
) -> None:
    _check(workspace, {**_valid_files(), name: content}, probe_pack)


@pytest.fixture(scope="module")
def example_texts() -> dict[str, str]:
    return {
        path.relative_to(EXAMPLE).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(EXAMPLE.rglob("*.yaml"))
    }


@settings(max_examples=30, **_COMMON)
@given(data=st.data())
def test_mutated_example_with_the_built_in_pack(
    workspace: Workspace, small_budget: Any, example_texts: dict[str, str], data: st.DataObject
) -> None:
    """The example portfolio, one file mutated, through every built-in policy."""
    import yaml

    name = data.draw(st.sampled_from(sorted(example_texts)), label="file")
    files: dict[str, Any] = dict(example_texts)
    files[name] = data.draw(gen.hostile_yaml(yaml.safe_load(example_texts[name])), label=name)
    root = workspace.reset(files)
    shutil.copytree(EXAMPLE / "residency", root / "residency")
    assert_contract(run_in_process(*check_args(root, "--all")))


@settings(max_examples=30, **_COMMON)
@given(slot=st.sampled_from(sorted(_SLOTS)), data=st.data())
def test_validate_on_hostile_files(
    workspace: Workspace, probe_pack: Path, slot: str, data: st.DataObject
) -> None:
    files = _valid_files()
    files[slot] = data.draw(gen.hostile_yaml(_SLOTS[slot]), label=slot)
    root = workspace.reset(files)
    result = run_in_process("validate", root, "--no-builtin", "--policies", probe_pack, "--no-cache")
    assert_contract(result, report=False)


_REAL = st.one_of(
    st.tuples(st.sampled_from(sorted(_SLOTS)), st.none()).flatmap(
        lambda t: st.tuples(st.just(t[0]), gen.hostile_yaml(_SLOTS[t[0]]))
    ),
    st.tuples(st.just("policies/p.yaml"), gen.policy_text()),
    st.tuples(st.just("exceptions.yaml"), gen.exceptions_text()),
    gen.residency_file(),
)


@settings(max_examples=12, **{**_COMMON, "deadline": timedelta(seconds=120)})
@given(case=_REAL)
def test_real_processes(
    tmp_path_factory: pytest.TempPathFactory, probe_pack: Path, case: tuple[str, Any]
) -> None:
    """The same contract with nothing shared: a fresh interpreter, real exit status and streams.
    These runs use the parse cache (a test directory): the second run reads what the first
    wrote, and must say exactly the same."""
    name, content = case
    root = Workspace(tmp_path_factory.mktemp("real") / "portfolio").reset({**_valid_files(), name: content})
    args = [arg for arg in check_args(root, "--no-builtin", "--policies", probe_pack) if arg != "--no-cache"]
    first = run_for_real(*args)
    assert_contract(first)
    assert run_for_real(*args) == first


def test_a_thousand_cases_per_run() -> None:
    """The count above is what Hypothesis is asked for."""
    tests = [
        value
        for name, value in globals().items()
        if name.startswith("test_") and hasattr(value, "hypothesis")
    ]
    total = sum(test._hypothesis_internal_use_settings.max_examples for test in tests)
    assert len(tests) == 8
    assert total == 1_012
