"""Generate a synthetic portfolio in the project's own layout (portfolio.yaml + models/*.yaml).

    python bench/generate.py OUT_DIR --versions 1000 [--seed 7] [--residency-days 90]

The mix is realistic rather than uniform: mostly production versions with one to three
deployments and four sign-offs, a tail of canaries, shadows, fallbacks, deprecated and retired
versions, some of them past their clocks so that policies fail as they would in practice.

Measured residency: one record per deployment and day for the last ``--residency-days`` days
before the as-of date (0: none), in the native CSV format, one file per month under
``residency/``, as ``policy-engine residency import`` writes them. Deployments differ in load:
some are busy, some idle, canaries take their share of traffic.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
GPUS = {
    "nvidia-l4": 0.71,
    "nvidia-a10g": 1.01,
    "nvidia-l40s": 1.62,
    "nvidia-t4": 0.35,
    "nvidia-h100-80gb": 4.10,
}
STAGES = [
    ("production", 55),
    ("canary", 10),
    ("shadow", 5),
    ("fallback", 5),
    ("deprecated", 10),
    ("retired", 10),
    ("proposed", 5),
]
ROLES = ["platform", "ml", "app", "finance"]
PEOPLE = {
    "platform": ["priya-n", "tomasz-k"],
    "ml": ["lena-ml", "arjun-r"],
    "app": ["dana-app", "yuki-s"],
    "finance": ["marta-f", "ben-cfo"],
}
REGIONS = ["us-east-1", "eu-west-1", "us-central1"]


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def portfolio_doc() -> dict:
    teams = [
        {"id": "inference-platform", "function": "platform", "cost_center": "CC-4100"},
        {"id": "ml-core", "function": "ml", "cost_center": "CC-5100"},
        {"id": "app-core", "function": "app", "cost_center": "CC-6100"},
        {"id": "finops", "function": "finance", "cost_center": "CC-9000"},
    ]
    team_of = {"platform": "inference-platform", "ml": "ml-core", "app": "app-core", "finance": "finops"}
    roster = [
        {
            "login": login,
            "name": login,
            "team": team_of[role],
            "roles": [role],
            "limits": {"approve_monthly_delta": 50000},
        }
        for role, logins in PEOPLE.items()
        for login in logins
    ]
    return {
        "schema_version": 1,
        "kind": "InferencePortfolio",
        "portfolio": {"id": "synthetic", "name": "Synthetic portfolio", "currency": "USD"},
        "teams": teams,
        "roster": roster,
        "authority": {
            "cost_tiers": [
                {"max_monthly_delta": 2000, "required_roles": ["platform"]},
                {"max_monthly_delta": None, "required_roles": ["platform", "finance"]},
            ]
        },
        "rates": {"gpu_hour": GPUS, "overhead_per_replica_hour": 0.09},
    }


def pick_stage(rng: random.Random) -> str:
    roll = rng.randrange(100)
    for stage, weight in STAGES:
        if roll < weight:
            return stage
        roll -= weight
    return "production"


def version_doc(rng: random.Random, model: str, number: int, stage: str) -> dict:
    created = AS_OF - timedelta(days=rng.randint(20, 400))
    version: dict = {
        "version": str(number),
        "stage": stage,
        "created_at": ts(created),
        "artifact_uri": f"s3://models/{model}/{number}/",
    }
    version["entry_evidence"] = {
        "eval": {
            "dataset": "holdout",
            "evaluated_at": ts(created + timedelta(days=1)),
            "metrics": [{"type": "f1", "value": round(rng.uniform(0.8, 0.95), 3)}],
        },
        "load_test": {
            "tool": "k6",
            "at": ts(created + timedelta(days=2)),
            "target_rps": 100,
            "achieved_rps": rng.randint(90, 160),
            "p95_latency_ms": rng.randint(20, 90),
            "replicas_under_test": 1,
        },
        "residency_estimate": {"method": "floor", "monthly_floor": 600.0, "monthly_expected": 900.0},
    }
    if stage == "canary":
        version["canary"] = {
            "of_version": str(max(number - 1, 1)),
            "started_at": ts(AS_OF - timedelta(days=rng.randint(1, 40))),
            "max_duration": "336h",
            "traffic_percent": rng.choice([1, 5, 10, 20]),
        }
    if stage == "shadow":
        version["shadow"] = {
            "of_version": str(max(number - 1, 1)),
            "started_at": ts(AS_OF - timedelta(days=rng.randint(1, 45))),
            "max_duration": "720h",
            "sampling_percent": 100,
        }
    if stage == "fallback":
        version["fallback"] = {
            "for_version": {"model": model, "version": str(number + 1)},
            "review_by": ts(AS_OF + timedelta(days=rng.randint(-20, 80))),
            "last_drill_at": ts(AS_OF - timedelta(days=rng.randint(5, 150))),
        }
    if stage in ("deprecated", "retired"):
        version["exit_criteria"] = {
            "retire_by": ts(AS_OF + timedelta(days=rng.randint(-30, 60))),
            "replacement": {"model": model, "version": str(number + 1)},
        }
    deployments = []
    if stage != "retired":
        for index in range(rng.choice([1, 1, 2, 3])):
            region = REGIONS[index % len(REGIONS)]
            gpu = rng.choice(list(GPUS))
            deployment_id = f"{model}-v{number}-{region}"
            deployments.append(
                {
                    "id": deployment_id,
                    "endpoint": model,
                    "region": region,
                    "platform": "kserve",
                    "traffic_percent": 0 if stage in ("shadow", "fallback") else 100,
                    "replicas": {"min": rng.randint(0, 3), "max": rng.randint(3, 8)},
                    "accelerator": {"type": gpu, "count": rng.choice([1, 1, 2, 4])},
                    "owner_team": "app-core",
                    "cost_center": "CC-6100",
                    "selectors": {"k8s_labels": {"portfolio.acme.io/deployment": deployment_id}},
                }
            )
    version["deployments"] = deployments
    signed = created + timedelta(days=3)
    version["signoffs"] = [
        {
            "role": role,
            "by": rng.choice(PEOPLE[role]),
            "at": ts(signed),
            "expires_at": ts(signed + timedelta(days=90)),
            "scope": {"kind": "promotion", "subject_digest": "sha256:" + f"{rng.getrandbits(256):064x}"},
        }
        for role in ROLES
        if stage == "production"
    ]
    return version


RESIDENCY_COLUMNS = [
    "deployment_id",
    "window_start",
    "window_end",
    "coverage",
    "gpu_type",
    "gpu_hours",
    "gpu_count_avg",
    "warm_replica_hours",
    "replicas_min_observed",
    "replicas_max_observed",
    "gpu_util_avg",
    "gpu_util_p95",
    "cost_total",
    "cost_gpu",
    "cost_other",
    "currency",
    "cost_basis",
    "requests",
    "requests_failed",
    "tokens_in",
    "tokens_out",
    "traffic_share",
    "team",
    "cost_center",
    "source",
]


def write_residency(out: Path, deployments: list[dict], days: int, rng: random.Random) -> int:
    """Daily records for ``deployments`` over the ``days`` before AS_OF; returns the count."""
    handles: dict[str, tuple] = {}
    count = 0
    (out / "residency").mkdir(exist_ok=True)
    profiles = [(d, rng.choice([0.03, 0.08, 0.25, 0.45, 0.7]), rng.random()) for d in deployments]
    try:
        for day in range(days, 0, -1):
            start = AS_OF - timedelta(days=day)
            month = start.strftime("%Y-%m")
            if month not in handles:
                handle = (out / "residency" / f"{month}.csv").open("w", newline="")
                writer = csv.writer(handle)
                writer.writerow(RESIDENCY_COLUMNS)
                handles[month] = (handle, writer)
            writer = handles[month][1]
            window = (ts(start), ts(start + timedelta(days=1)))
            for deployment, busy, share in profiles:
                replicas = max(deployment["replicas"]["min"], 1)
                gpus = deployment["accelerator"]["count"] * replicas
                rate = GPUS[deployment["accelerator"]["type"]]
                util = min(1.0, max(0.0, busy + rng.uniform(-0.02, 0.02)))
                requests = int(util * 400_000 * deployment["traffic_percent"] / 100)
                gpu_cost = round(gpus * 24 * rate, 2)
                other = round(replicas * 24 * 0.09, 2)
                writer.writerow(
                    [
                        deployment["id"],
                        *window,
                        1.0,
                        deployment["accelerator"]["type"],
                        gpus * 24.0,
                        float(gpus),
                        replicas * 24.0,
                        replicas,
                        replicas,
                        round(util, 3),
                        round(min(1.0, util * 1.6), 3),
                        round(gpu_cost + other, 2),
                        gpu_cost,
                        other,
                        "USD",
                        "effective",
                        requests,
                        requests // 2000,
                        requests * 900,
                        requests * 120,
                        round(share, 3) if deployment["traffic_percent"] else 0.0,
                        deployment["owner_team"],
                        deployment["cost_center"],
                        "opencost+prometheus+focus",
                    ]
                )
                count += 1
    finally:
        for handle, _ in handles.values():
            handle.close()
    return count


def generate(out: Path, versions: int, seed: int = 7, residency_days: int = 90) -> int:
    """Write the portfolio; returns the number of residency records written."""
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    (out / "models").mkdir(parents=True)
    dump = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    (out / "portfolio.yaml").write_text(yaml.dump(portfolio_doc(), Dumper=dump, sort_keys=False))
    made = 0
    model_index = 0
    deployments: list[dict] = []
    while made < versions:
        model = f"model-{model_index:05d}"
        count = min(rng.randint(2, 6), versions - made)
        model_doc = {
            "id": model,
            "owner_team": "ml-core",
            "consumer_teams": ["app-core"],
            "cost_center": "CC-6100",
            "slo": {"p95_latency_ms": 100, "expected_peak_rps": 80},
            "entry_criteria": {
                "eval": [{"type": "f1", "min": 0.85}],
                "load_test": {"min_peak_multiple": 1.2, "max_age": "720h"},
            },
            "versions": [version_doc(rng, model, n + 1, pick_stage(rng)) for n in range(count)],
        }
        (out / "models" / f"{model}.yaml").write_text(yaml.dump(model_doc, Dumper=dump, sort_keys=False))
        deployments += [d for v in model_doc["versions"] for d in v["deployments"]]
        made += count
        model_index += 1
    return write_residency(out, deployments, residency_days, rng) if residency_days else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--residency-days", type=int, default=90, help="days of daily records (0: none)")
    args = parser.parse_args()
    records = generate(args.out, args.versions, args.seed, args.residency_days)
    print(f"wrote {args.versions} versions and {records:,} residency records to {args.out}")


if __name__ == "__main__":
    main()
