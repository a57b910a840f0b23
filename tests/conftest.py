"""Shared fixtures: a clean environment, the real CLI in a subprocess, and portfolio builders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "acme-portfolio"
AS_OF = "2025-06-30T00:00:00Z"

# Variables that switch the CLI's context or GitHub behaviour (DESIGN §9: tests clear them).
_DETECTED = ("PRE_COMMIT",)


def _is_detected(name: str) -> bool:
    return name.startswith("GITHUB_") or name in _DETECTED


_TEST_CACHE = Path(tempfile.gettempdir()) / f"policy-engine-test-cache-{os.getpid()}"


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    """A parse cache of the test's own (in this process), turned off afterwards."""
    from policy_engine import parsecache

    parsecache.configure(tmp_path / "cache")
    yield tmp_path / "cache"
    parsecache.configure(None)


def next_run(cache: Path) -> None:
    """What a later process sees of the parse cache: only what is on disk."""
    from policy_engine import parsecache

    parsecache.flush()
    parsecache.configure(cache)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the CI or pre-commit environment it happens to run in."""
    for name in list(os.environ):
        if _is_detected(name):
            monkeypatch.delenv(name)
    # Keep the parse cache of test runs out of the user's cache directory.
    monkeypatch.setenv("POLICY_ENGINE_CACHE_DIR", str(_TEST_CACHE))


class CliResult(NamedTuple):
    code: int
    stdout: str
    stderr: str


CliRunner = Callable[..., CliResult]


def run_policy_engine(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run ``python -m policy_engine ARGS`` for real: exit codes and tracebacks are genuine.

    ``env`` adds variables to a copy of the environment (``None`` removes one); variables that
    select a context are always removed first, so only ``env`` can set them.
    """
    environment = {k: v for k, v in os.environ.items() if not _is_detected(k)}
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    completed = subprocess.run(
        [sys.executable, "-m", "policy_engine", *(str(a) for a in args)],
        cwd=cwd or REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(scope="session")
def run_cli() -> CliRunner:
    """``run_cli(*args, cwd=None, env=None) -> (code, stdout, stderr)``."""
    return run_policy_engine


def run_policy_engine_many(
    calls: Sequence[Sequence[str | Path]],
    *,
    envs: Sequence[Mapping[str, str | None] | None] | None = None,
) -> list[CliResult]:
    """Independent runs (one argument list each) in parallel subprocesses, results in order."""
    chosen = list(envs) if envs is not None else [None] * len(calls)
    assert len(chosen) == len(calls)
    workers = max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda args, env: run_policy_engine(*args, env=env), calls, chosen))


@pytest.fixture(scope="session")
def run_cli_many() -> Callable[..., list[CliResult]]:
    """``run_cli_many([[*args], ...], envs=None) -> [(code, stdout, stderr), ...]``, concurrently."""
    return run_policy_engine_many


@pytest.fixture
def portfolio_dir(tmp_path: Path) -> Path:
    """A private copy of the example portfolio that a test may break."""
    target = tmp_path / "acme-portfolio"
    shutil.copytree(EXAMPLE, target)
    return target


# ---------------------------------------------------------------------------- minimal portfolio

MINIMAL_PORTFOLIO: dict[str, Any] = {
    "schema_version": 1,
    "kind": "InferencePortfolio",
    "portfolio": {"id": "test", "name": "Test portfolio", "currency": "USD"},
    "teams": [
        {"id": "platform", "function": "platform", "cost_center": "CC-1"},
        {"id": "ml", "function": "ml", "cost_center": "CC-2"},
        {"id": "finops", "function": "finance", "cost_center": "CC-9"},
    ],
    "roster": [
        {"login": "pat", "name": "Pat", "team": "platform", "roles": ["platform"]},
        {"login": "mel", "name": "Mel", "team": "ml", "roles": ["ml"]},
        {"login": "fin", "name": "Fin", "team": "finops", "roles": ["finance"]},
    ],
    "rates": {"gpu_hour": {"nvidia-l4": 0.7}},
}

MINIMAL_MODEL: dict[str, Any] = {
    "id": "m",
    "owner_team": "ml",
    "versions": [
        {
            "version": "1",
            "stage": "production",
            "deployments": [
                {
                    "id": "m-1-use1",
                    "endpoint": "m",
                    "region": "us-east-1",
                    "traffic_percent": 100,
                    "replicas": {"min": 1, "max": 2},
                    "accelerator": {"type": "nvidia-l4", "count": 1},
                }
            ],
        }
    ],
}

Content = str | bytes | Mapping[str, Any] | list[Any]


def _text(content: Content) -> str | bytes:
    if isinstance(content, str | bytes):
        return content
    return yaml.safe_dump(content, sort_keys=False, allow_unicode=True)


def write_files(root: Path, files: Mapping[str, Content | None]) -> None:
    """Write ``{relative path: YAML text, bytes or data}``; ``None`` deletes the file."""
    for relative, content in files.items():
        path = root / relative
        if content is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _text(content)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")


def build_portfolio(
    root: Path,
    *,
    portfolio: Content | None = None,
    models: Mapping[str, Content] | None = None,
    files: Mapping[str, Content | None] | None = None,
) -> Path:
    """A minimal valid portfolio at ``root``: ``portfolio.yaml`` plus ``models/m.yaml``.

    ``models`` replaces the model files (names relative to ``models/``); ``files`` is written
    last, so it can override or delete (``None``) anything.
    """
    root.mkdir(parents=True, exist_ok=True)
    write_files(root, {"portfolio.yaml": MINIMAL_PORTFOLIO if portfolio is None else portfolio})
    chosen = {"m.yaml": MINIMAL_MODEL} if models is None else models
    write_files(root, {f"models/{name}": content for name, content in chosen.items()})
    write_files(root, files or {})
    return root


PortfolioWriter = Callable[..., Path]


@pytest.fixture(scope="session")
def portfolio_builder() -> Callable[..., Path]:
    """``build_portfolio(root, portfolio=..., models=..., files=...)`` for wider-scoped fixtures."""
    return build_portfolio


@pytest.fixture
def write_portfolio(tmp_path: Path) -> PortfolioWriter:
    """``write_portfolio(portfolio=..., models=..., files=..., name="p") -> root``."""

    def write(name: str = "portfolio", **kwargs: Any) -> Path:
        return build_portfolio(tmp_path / name, **kwargs)

    return write
