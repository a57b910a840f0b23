"""Time ``policy-engine check`` end to end on synthetic portfolios, per size and CEL backend.

    python bench/run.py [--sizes 1000,10000] [--backends cpp,python] [--out bench/out]

For each size it generates a portfolio (bench/generate.py), then:
- runs the real CLI in a fresh process (wall time, the figure a user sees), and
- runs the same pipeline in-process with a timer per stage (load, compile, evaluate, report),
- and, as baselines in the same process, ``json.load`` of the same data (the parsing floor).
Prints a Markdown table and writes JSON next to it for comparisons across commits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate

AS_OF = "2026-03-01T00:00:00Z"


def end_to_end(root: Path, backend: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "policy_engine",
            "check",
            str(root),
            "--as-of",
            AS_OF,
            "--cel-backend",
            backend,
            "--format",
            "json",
            "--output",
            str(root / "report.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"check failed ({result.returncode}): {result.stderr}")
    return elapsed


def stages(root: Path, backend: str) -> dict[str, float]:
    from policy_engine.commands.check import CheckOptions, LoadOptions, ledger_rules, load_all
    from policy_engine.engine import Facts, Settings, evaluate
    from policy_engine.report import build_report
    from policy_engine.reporters.json_ import render
    from policy_engine.targets import build_targets

    as_of = datetime(2026, 3, 1, tzinfo=UTC)
    options = CheckOptions(load=LoadOptions(path=root, backend=backend), as_of=as_of, context="audit")  # type: ignore[arg-type]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_all(options.load)  # load + validate + compile
    timings["load+compile"] = time.perf_counter() - start
    start = time.perf_counter()
    targets = build_targets(loaded.portfolio)
    timings["targets"] = time.perf_counter() - start
    start = time.perf_counter()
    outcome = evaluate(
        targets,
        loaded.policies,
        loaded.backend,
        Settings(as_of, "audit"),
        Facts(),
        loaded.portfolio.exceptions.exceptions,
        ledger_rules(loaded, "audit"),
        loaded.matchers,
    )
    timings["evaluate"] = time.perf_counter() - start
    start = time.perf_counter()
    report = build_report(
        outcome, loaded.policies, loaded.overrides, as_of=AS_OF, context="audit", backend=loaded.backend.name
    )
    text = render(report)
    timings["report"] = time.perf_counter() - start
    # Parsing floor: the same portfolio as JSON.
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    as_json = root.parent / (root.name + ".json")
    docs = [yaml.load(p.read_text(), Loader=loader) for p in sorted((root / "models").glob("*.yaml"))]
    as_json.write_text(json.dumps(docs))
    start = time.perf_counter()
    json.loads(as_json.read_text())
    timings["json.load floor"] = time.perf_counter() - start
    timings["report bytes"] = float(len(text))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--backends", default="cpp,python")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        root = args.out / f"portfolio-{size}"
        generate(root, size)
        for backend in args.backends.split(","):
            wall = end_to_end(root, backend)
            timing = stages(root, backend)
            rows.append(
                {
                    "versions": size,
                    "backend": backend,
                    "wall_s": round(wall, 3),
                    **{k: round(v, 3) for k, v in timing.items()},
                }
            )
            print(f"  {size} {backend}: {wall:.2f}s", file=sys.stderr)
    headers = [
        "versions",
        "backend",
        "wall_s",
        "load+compile",
        "targets",
        "evaluate",
        "report",
        "json.load floor",
    ]
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in headers) + " |")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
