"""Time the history pass on a synthetic repository: 2,000 commits, 500 model versions.

    python bench/history_bench.py [--commits 2000] [--versions 500] [--models 50] [--keep DIR]

The repository is written with ``git fast-import`` (seconds, not minutes): 50 model files
whose versions are added over time, move through their stages and get edited, one model file
per commit, dates one hour apart. Then the one first-parent pass that computes ``history``
(git log, changed blobs read and parsed once each, stage walk) is timed, and so is the
all-commits pass that attributes sign-offs for ``--signoff-verification git``. Target for the
history pass: at most 5 s.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy_engine.gitrepo import GitRepo
from policy_engine.history import Summaries, signoff_introductions, stage_history

TARGET_SECONDS = 5.0
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
STAGES = ("proposed", "canary", "production", "deprecated", "retired")
START = datetime(2023, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(model: str, number: int, rng: random.Random) -> dict[str, object]:
    return {
        "version": str(number),
        "stage": "proposed",
        "artifact_uri": f"s3://models/{model}/{number}/",
        "created_at": "2023-01-01T00:00:00Z",
        "entry_evidence": {
            "residency_estimate": {"method": "floor", "monthly_floor": 584.0, "monthly_expected": 700.0}
        },
        "deployments": [
            {
                "id": f"{model}-v{number}-use1",
                "endpoint": model,
                "region": "us-east-1",
                "traffic_percent": 0,
                "replicas": {"min": rng.randint(1, 4), "max": 8},
                "accelerator": {"type": "nvidia-l4", "count": 1},
                "owner_team": "ml",
                "cost_center": "CC-1",
            }
        ],
        "signoffs": [],
    }


def _commits(models: int, versions: int, commits: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """(path, content, date) per commit: each commit rewrites one model file."""
    rng = random.Random(seed)
    docs = {
        f"model-{i:03d}": {"id": f"model-{i:03d}", "owner_team": "ml", "versions": []} for i in range(models)
    }
    names = sorted(docs)
    plan: list[str] = ["add"] * versions + ["edit"] * (commits - versions)
    head, tail = plan[: models * 2], plan[models * 2 :]
    rng.shuffle(tail)
    plan = head + tail
    added = 0
    out = []
    for index, action in enumerate(plan):
        if action == "add":
            model = names[added % models]
            doc = docs[model]
            doc["versions"].append(_version(model, len(doc["versions"]) + 1, rng))  # type: ignore[attr-defined]
            added += 1
        else:
            model = rng.choice([n for n in names if docs[n]["versions"]])
            doc = docs[model]
            version = rng.choice(doc["versions"])  # type: ignore[arg-type]
            if rng.random() < 0.5 and version["stage"] != "retired":
                version["stage"] = STAGES[STAGES.index(version["stage"]) + 1]
            elif rng.random() < 0.5:
                version["signoffs"].append(
                    {
                        "role": rng.choice(["platform", "ml", "app", "finance"]),
                        "by": f"person-{rng.randint(1, 40)}",
                        "at": _stamp(START + timedelta(hours=index)),
                        "expires_at": _stamp(START + timedelta(hours=index, days=80)),
                        "scope": {"kind": "promotion", "subject_digest": "sha256:" + f"{index:064x}"},
                    }
                )
            else:
                version["deployments"][0]["replicas"]["max"] += 1
        date = str(int((START + timedelta(hours=index)).timestamp()))
        out.append((f"models/{model}.yaml", yaml.dump(doc, Dumper=_DUMPER, sort_keys=False), date))
    return out


def build(root: Path, models: int, versions: int, commits: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    stream: list[bytes] = []
    for path, content, epoch in _commits(models, versions, commits):
        data = content.encode()
        message = f"change {path}".encode()
        stream += [
            b"commit refs/heads/main\n",
            f"author Bench <bench@example.com> {epoch} +0000\n".encode(),
            f"committer Bench <bench@example.com> {epoch} +0000\n".encode(),
            f"data {len(message)}\n".encode() + message + b"\n",
        ]
        stream.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=b"".join(stream), check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=root, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="Build the repository here and keep it.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="history-bench-"))
    try:
        if not (root / ".git").exists():
            start = time.perf_counter()
            root.mkdir(parents=True, exist_ok=True)
            build(root, args.models, args.versions, args.commits)
            elapsed = time.perf_counter() - start
            print(f"built {args.commits} commits, {args.versions} versions in {elapsed:.1f} s")
        repo = GitRepo.open(root)
        head = repo.head()

        start = time.perf_counter()
        summaries = Summaries(repo.blob)
        state, _ = stage_history(repo.log(head, ["models"], first_parent=True), summaries, "models/")
        history_seconds = time.perf_counter() - start
        commits = len(repo.first_parent_chain(head))

        start = time.perf_counter()
        every = repo.log(head, ["models"], first_parent=False)
        introductions = signoff_introductions(every, summaries, "models/")
        attribution_seconds = time.perf_counter() - start

        verdict = "ok" if history_seconds <= TARGET_SECONDS else "OVER TARGET"
        print(
            f"history pass: {history_seconds:.2f} s for {commits} commits, {len(state)} versions, "
            f"{summaries.parsed} blobs parsed (target <= {TARGET_SECONDS:.0f} s: {verdict})"
        )
        print(
            f"sign-off attribution pass (cache warm): {attribution_seconds:.2f} s, "
            f"{len(introductions)} sign-offs attributed"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
