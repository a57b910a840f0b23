"""Residency at scale: 5,000 deployments × 90 daily records loaded, joined and aggregated.

Run: ``.venv/bin/python bench/residency_bench.py [--deployments N] [--days D]``. Generates a
portfolio and its residency files in a temporary directory, then prints how long each stage
takes. The target is at most 10 s for loading the records, joining and aggregating them.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from policy_engine.loading import load_portfolio
from policy_engine.residency.aggregate import measure
from policy_engine.residency.native import load_residency
from policy_engine.sources import DirectorySource

BUDGET_SECONDS = 10.0
PER_MODEL = 10  # deployments per model file (2 versions × 5 regions)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1")

PORTFOLIO = """\
schema_version: 1
kind: InferencePortfolio
portfolio: {id: bench, name: Bench, currency: USD, hours_per_month: 730}
rates: {gpu_hour: {nvidia-l4: 0.71}, overhead_per_replica_hour: 0.09}
"""


def write_portfolio(root: Path, deployments: int) -> list[tuple[str, str]]:
    """Model files with ``deployments`` deployments; returns (deployment id, version stage)."""
    (root / "models").mkdir(parents=True)
    (root / "portfolio.yaml").write_text(PORTFOLIO, encoding="utf-8")
    ids: list[tuple[str, str]] = []
    for m in range(deployments // PER_MODEL):
        lines = [f"id: model-{m:04d}", "owner_team: ml", "versions:"]
        for v, stage in ((1, "production"), (2, "canary")):
            lines += [f'  - version: "{v}"', f"    stage: {stage}", "    deployments:"]
            for region in REGIONS:
                dep = f"m{m:04d}-v{v}-{region}"
                ids.append((dep, stage))
                lines += [
                    f"      - id: {dep}",
                    f"        endpoint: model-{m:04d}",
                    f"        region: {region}",
                    f"        traffic_percent: {90 if v == 1 else 10}",
                    "        replicas: {min: 1, max: 4}",
                    "        accelerator: {type: nvidia-l4, count: 1}",
                    f"        selectors: {{k8s_labels: {{portfolio.example.com/deployment: {dep}}}}}",
                ]
        (root / "models" / f"model-{m:04d}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids


def write_residency(root: Path, ids: list[tuple[str, str]], first: datetime, days: int) -> int:
    """One JSON Lines file per 30 days, one record per deployment and day."""
    (root / "residency").mkdir()
    count = 0
    for chunk in range(0, days, 30):
        lines = []
        for d in range(chunk, min(days, chunk + 30)):
            start = first + timedelta(days=d)
            ws = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            we = (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for i, (dep, stage) in enumerate(ids):
                replicas = 1.0 + (i % 4) * 0.5
                requests = 90_000 if stage == "production" else 10_000
                record = {
                    "schema_version": 1,
                    "deployment_id": dep,
                    "window_start": ws,
                    "window_end": we,
                    "coverage": 1.0,
                    "gpu_type": "nvidia-l4",
                    "gpu_hours": replicas * 24,
                    "gpu_count_avg": replicas,
                    "warm_replica_hours": replicas * 24,
                    "replicas_min_observed": 1,
                    "replicas_max_observed": 3,
                    "gpu_util_avg": round(0.05 + (i % 10) * 0.07, 3),
                    "gpu_util_p95": 0.9,
                    "cost": {
                        "total": round(replicas * 24 * 0.80, 2),
                        "gpu": round(replicas * 24 * 0.71, 2),
                        "other": round(replicas * 24 * 0.09, 2),
                        "currency": "USD",
                        "basis": "effective",
                    },
                    "requests": requests + d,
                    "requests_failed": 3,
                    "tokens_in": None,
                    "tokens_out": None,
                    "traffic_share": None,
                    "labels": {"team": "app"},
                    "provenance": {"source": "opencost+prometheus+focus"},
                }
                lines.append(json.dumps(record, separators=(",", ":")))
                count += 1
        (root / "residency" / f"{first + timedelta(days=chunk):%Y-%m-%d}.jsonl").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    as_of = datetime(2025, 7, 1, tzinfo=UTC)
    first = as_of - timedelta(days=args.days)
    with tempfile.TemporaryDirectory(prefix="residency-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        ids = write_portfolio(root, args.deployments)
        count = write_residency(root, ids, first, args.days)
        size = sum(p.stat().st_size for p in (root / "residency").iterdir())
        print(
            f"generated {len(ids):,} deployments, {count:,} records ({size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - started:.1f}s"
        )
        source = DirectorySource(root)

        started = time.perf_counter()
        portfolio = load_portfolio(source)
        portfolio_seconds = time.perf_counter() - started

        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        records = load_residency(source)
        loaded, cpu_loaded = time.perf_counter(), time.process_time()
        measured = measure(portfolio, records, as_of)
        done, cpu_done = time.perf_counter(), time.process_time()

    total = done - started
    print("                                          wall      cpu")
    print(f"portfolio load (outside the budget):    {portfolio_seconds:6.2f}s")
    print(
        f"residency load + validation:            {loaded - started:6.2f}s  {cpu_loaded - cpu_started:6.2f}s"
        f"  ({len(records):,} records)"
    )
    print(
        f"join + aggregate (30-day window):       {done - loaded:6.2f}s  {cpu_done - cpu_loaded:6.2f}s"
        f"  ({len(measured.by_target):,} targets)"
    )
    print(
        f"residency total:                        {total:6.2f}s  {cpu_done - cpu_started:6.2f}s"
        f"  (budget {BUDGET_SECONDS:.0f}s wall)"
    )
    return 0 if total <= BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
