"""The built-in pack's test suites, run once per CEL backend for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_engine.policies import builtin_pack_dir
from policy_engine.testsuite import RunResult, run

PACK = builtin_pack_dir()


@pytest.fixture(scope="session")
def pack_results() -> dict[str, RunResult]:
    """``policy-engine test policies`` with cel-expr-python (``cpp``) and cel-python."""
    return {backend: run([PACK], backend=backend) for backend in ("cpp", "python")}


@pytest.fixture
def pack_dir() -> Path:
    return PACK
