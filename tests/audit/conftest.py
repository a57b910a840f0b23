"""A real git repository holding the example portfolio across two quarters, for ``audit``.

The portfolio lives in ``inference/`` inside the repository. Every commit pins author,
committer and both dates, so shas (and with them the golden reports) are the same on every run:

- 2025-02-14: the Q1 state, derived from the example (no doc-summarizer, no canary or shadow
  yet, fraud-scorer@11 and embedding-encoder@1 still in production, support-intent-classifier@6
  deprecated with a warm replica) plus generated residency for all of Q1 (``2025-q1.jsonl``);
- 2025-05-12: an intermediate Q2 state (the example without doc-summarizer and search-reranker@4);
- 2025-06-20: the example exactly as it is in ``examples/acme-portfolio`` (with its June residency);
- 2025-07-08: a change after the quarter (fraud-scorer@11 retired) that a 2025Q2 audit must ignore.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from tests.conftest import EXAMPLE

PORTFOLIO = "inference"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Priya N.",
    "GIT_AUTHOR_EMAIL": "priya-n@example.com",
    "GIT_COMMITTER_NAME": "Priya N.",
    "GIT_COMMITTER_EMAIL": "priya-n@example.com",
}
Q1_AT = "2025-02-14T12:00:00+00:00"
MID_Q2_AT = "2025-05-12T12:00:00+00:00"
Q2_AT = "2025-06-20T12:00:00+00:00"
AFTER_AT = "2025-07-08T09:00:00+00:00"


class AuditRepo(NamedTuple):
    root: Path  # the repository
    portfolio: Path  # the portfolio root inside it
    commits: dict[str, str]  # "q1", "mid", "q2", "after" -> sha


# ---------------------------------------------------------------------------- git


def _git(repo: Path, *args: str, at: str | None = None) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") and key not in ("EMAIL", "HOME", "XDG_CONFIG_HOME")
    }
    env.update(IDENTITY)
    env.update({"HOME": str(repo), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    if at is not None:
        env.update({"GIT_AUTHOR_DATE": at, "GIT_COMMITTER_DATE": at})
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _commit(repo: Path, message: str, at: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message, at=at)
    return _git(repo, "rev-parse", "HEAD")


# ---------------------------------------------------------------------------- portfolio states


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLE / "models" / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _version(model: dict[str, Any], version: str) -> dict[str, Any]:
    for entry in model["versions"]:
        if entry["version"] == version:
            return entry  # type: ignore[no-any-return]
    raise KeyError(f"{model['id']}@{version}")


def _without(model: dict[str, Any], *versions: str) -> dict[str, Any]:
    out = copy.deepcopy(model)
    out["versions"] = [v for v in out["versions"] if v["version"] not in versions]
    return out


def q1_models() -> dict[str, str]:
    """The model files of the Q1 state (no doc-summarizer)."""
    sic = _without(_load("support-intent-classifier.yaml"), "8")
    v6 = _version(sic, "6")
    v7 = _version(sic, "7")
    v7["deployments"][0]["traffic_percent"] = 100  # no canary yet
    legacy = copy.deepcopy(v7["deployments"][0])
    legacy.update(id="sic-v6-use1", endpoint="support-intent-classifier-legacy", traffic_percent=0)
    legacy["replicas"] = {"min": 1, "max": 1}
    legacy["selectors"] = {"k8s_labels": {"portfolio.acme.io/deployment": "sic-v6-use1"}}
    v6.update(stage="deprecated", deployments=[legacy])

    reranker = _without(_load("search-reranker.yaml"), "4")

    fraud = _without(_load("fraud-scorer.yaml"), "12")
    v11 = _version(fraud, "11")
    v11["stage"] = "production"
    v11.pop("exit_criteria", None)
    v11["deployments"][0].update(endpoint="fraud-scorer", traffic_percent=100)
    v11["deployments"][0]["replicas"] = {"min": 6, "max": 20}

    encoder = _without(_load("embedding-encoder.yaml"), "2")
    v1 = _version(encoder, "1")
    v1["stage"] = "production"
    v1.pop("exit_criteria", None)
    v2 = _version(_load("embedding-encoder.yaml"), "2")
    first = copy.deepcopy(v2["deployments"][0])
    first.update(id="enc-v1-use1")
    first["selectors"] = {"k8s_labels": {"portfolio.acme.io/deployment": "enc-v1-use1"}}
    v1["deployments"] = [first]

    return {
        "support-intent-classifier.yaml": _dump(sic),
        "search-reranker.yaml": _dump(reranker),
        "fraud-scorer.yaml": _dump(fraud),
        "embedding-encoder.yaml": _dump(encoder),
        "assistant-llm.yaml": (EXAMPLE / "models" / "assistant-llm.yaml").read_text(encoding="utf-8"),
        "assistant-llm-small.yaml": (EXAMPLE / "models" / "assistant-llm-small.yaml").read_text(
            encoding="utf-8"
        ),
    }


def after_q2_fraud() -> str:
    """fraud-scorer with v11 retired (its warm replica removed), committed after the quarter."""
    fraud = _load("fraud-scorer.yaml")
    v11 = _version(fraud, "11")
    v11.update(stage="retired", deployments=[])
    return _dump(fraud)


# ---------------------------------------------------------------------------- Q1 residency

_RATES = {
    "nvidia-l4": 0.71,
    "nvidia-a10g": 1.01,
    "nvidia-l40s": 1.62,
    "nvidia-t4": 0.35,
    "nvidia-h100-80gb": 4.10,
}
_OVERHEAD = 0.09


def q1_residency(models: dict[str, str]) -> str:
    """Daily native records for every deployment of the Q1 state, 2025-01-01 to 2025-03-31,
    plus some unattributed idle spend. Deterministic: values follow the day and the deployment."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    lines = []
    deployments = []
    for name in sorted(models):
        model = yaml.safe_load(models[name])
        for version in model["versions"]:
            for deployment in version.get("deployments", []):
                deployments.append((model["id"], version["stage"], deployment))
    for day in range(90):
        window_start = start + timedelta(days=day)
        window_end = window_start + timedelta(days=1)
        for index, (model_id, stage, deployment) in enumerate(deployments):
            floor = deployment["replicas"]["min"]
            gpus = deployment["accelerator"]["count"]
            gpu_type = deployment["accelerator"]["type"]
            busy = stage == "production"
            warm = floor * 24.0 * (1.0 + (0.25 * ((day + index) % 3) if busy else 0.0))
            gpu_hours = warm * gpus
            cost_gpu = round(gpu_hours * _RATES[gpu_type], 2)
            cost_other = round(warm * _OVERHEAD, 2)
            util = 0.42 + 0.05 * ((day * 3 + index) % 5) if busy else 0.02 + 0.01 * (index % 2)
            requests = (80_000 + 1_500 * ((day * 7 + index) % 11)) * floor if busy else 0
            tokens_out = requests * 310 if model_id.startswith("assistant-llm") else None
            share = deployment.get("traffic_percent", 0) / 100.0
            record = {
                "schema_version": 1,
                "deployment_id": deployment["id"],
                "window_start": f"{window_start:%Y-%m-%dT%H:%M:%SZ}",
                "window_end": f"{window_end:%Y-%m-%dT%H:%M:%SZ}",
                "coverage": 1.0,
                "gpu_type": gpu_type,
                "gpu_hours": round(gpu_hours, 3),
                "warm_replica_hours": round(warm, 3),
                "gpu_util_avg": round(util, 4),
                "cost": {
                    "total": round(cost_gpu + cost_other, 2),
                    "gpu": cost_gpu,
                    "other": cost_other,
                    "currency": "USD",
                    "basis": "effective",
                },
                "requests": requests,
                "tokens_out": tokens_out,
                "traffic_share": share,
                "labels": {
                    "team": deployment.get("owner_team", ""),
                    "cost_center": deployment.get("cost_center", ""),
                },
                "provenance": {
                    "source": "opencost+prometheus+focus",
                    "fetched_at": f"{window_end + timedelta(hours=3):%Y-%m-%dT%H:%M:%SZ}",
                },
            }
            lines.append(json.dumps(record, sort_keys=True, separators=(",", ":")))
        if day % 10 == 3:
            lines.append(
                json.dumps(
                    {
                        "schema_version": 1,
                        "deployment_id": None,
                        "unattributed_reason": "opencost:__idle__",
                        "window_start": f"{window_start:%Y-%m-%dT%H:%M:%SZ}",
                        "window_end": f"{window_end:%Y-%m-%dT%H:%M:%SZ}",
                        "gpu_hours": 20.0,
                        "cost": {"total": 71.5, "currency": "USD", "basis": "list"},
                        "provenance": {"source": "opencost"},
                    },
                    sort_keys=True,
                    separators=(",", ":"),
                )
            )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- the repository


def _write(root: Path, files: dict[str, str | None]) -> None:
    for relative, text in files.items():
        path = root / relative
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def build_audit_repo(root: Path) -> AuditRepo:
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q")
    portfolio = root / PORTFOLIO
    portfolio.mkdir()
    commits: dict[str, str] = {}

    models = q1_models()
    shutil.copy(EXAMPLE / "portfolio.yaml", portfolio / "portfolio.yaml")
    _write(portfolio, {f"models/{name}": text for name, text in models.items()})
    _write(portfolio, {"residency/2025-q1.jsonl": q1_residency(models)})
    commits["q1"] = _commit(root, "Q1 portfolio with its measured residency", Q1_AT)

    current = {p.name: p.read_text(encoding="utf-8") for p in sorted((EXAMPLE / "models").glob("*.yaml"))}
    mid = dict(current)
    del mid["doc-summarizer.yaml"]
    mid["search-reranker.yaml"] = _dump(_without(_load("search-reranker.yaml"), "4"))
    _write(portfolio, {f"models/{name}": text for name, text in mid.items()})
    shutil.copy(EXAMPLE / "exceptions.yaml", portfolio / "exceptions.yaml")
    commits["mid"] = _commit(
        root, "Promote fraud-scorer@12 and embedding-encoder@2; canary support-intent-classifier@8", MID_Q2_AT
    )

    _write(portfolio, {f"models/{name}": text for name, text in current.items()})
    shutil.copy(EXAMPLE / "residency" / "2025-06.jsonl", portfolio / "residency" / "2025-06.jsonl")
    commits["q2"] = _commit(root, "Shadow search-reranker@4, propose doc-summarizer, June residency", Q2_AT)

    _write(portfolio, {"models/fraud-scorer.yaml": after_q2_fraud()})
    commits["after"] = _commit(root, "Retire fraud-scorer@11", AFTER_AT)
    return AuditRepo(root, portfolio, commits)


@pytest.fixture(scope="session")
def audit_repo(tmp_path_factory: pytest.TempPathFactory) -> AuditRepo:
    """The two-quarter repository (built once; tests must not change it)."""
    return build_audit_repo(tmp_path_factory.mktemp("audit") / "portfolio-repo")


@pytest.fixture
def example_without_residency(tmp_path: Path) -> Path:
    """The example portfolio on disk outside any git repository, with no residency data."""
    target = tmp_path / "acme-portfolio"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("residency"))
    return target
