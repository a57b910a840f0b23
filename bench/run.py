"""Benchmark ``policy-engine check`` per portfolio size and CEL backend.

    python bench/run.py [--sizes 100,1000,10000,50000] [--backends cpp,python] [--out bench/out]
                        [--python-max 10000] [--residency-max 1000] [--repeat 3]

For each size it generates a portfolio in the project's layout (bench/generate.py) and measures:

- ``cold`` and ``warm``: the real CLI in a fresh process, first with an empty parse cache, then
  with the cache filled by that first run; wall time and peak RSS of the process. Each pair is
  run ``--repeat`` times: the table shows the median and the range (this shared machine varies
  by up to half from one minute to the next), peak RSS the largest;
- the stages of the same pipeline in this process: import (in a fresh interpreter), load
  (parse + validate), compile, targets, evaluate, report;
- two floors measured in the same run: the bare cel-expr-python loop over the same compiled
  expressions and pre-built activations (the evaluation floor) and ``json.load`` of the same
  data (the parsing floor).

Each size runs on the manifest alone (what a pre-commit hook or a pull request reads); sizes up
to ``--residency-max`` run again with 90 days of daily residency records under ``residency/``
(one record per deployment and day), whose rows add a ``residency`` stage (read, validate, join
and aggregate the records).

The package's bytecode is compiled first, as an installation has it: a stale ``.pyc`` would
otherwise be compiled again by every run (for good, where ``PYTHONDONTWRITEBYTECODE`` is set).

Prints a Markdown table and writes ``results.json`` beside it for comparisons across commits.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate

AS_OF = "2026-03-01T00:00:00Z"


def cli_run(root: Path, backend: str, cache: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``check`` in a fresh process."""
    env = {**os.environ, "POLICY_ENGINE_CACHE_DIR": str(cache)}
    command = [
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
        str(root.parent / "report.json"),
    ]
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN: the largest of any child so far).
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = code = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        said = errors.read().decode(errors="replace")
        if code not in (0, 1):
            raise SystemExit(f"check failed ({code}): {said}")
        if said.strip():  # e.g. a cache it refused: the run would not measure what it says
            raise SystemExit(f"check wrote to stderr: {said}")
    return elapsed, usage.ru_maxrss / 1024


def import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); import policy_engine.cli, policy_engine.commands.check; "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def stages_in_child(root: Path, backend: str) -> dict[str, float]:
    """``stages`` in a fresh interpreter: what one size leaves in memory must not slow the next
    (a large parent measurably slowed the later runs)."""
    command = [sys.executable, __file__, "--stages", str(root), "--backends", backend]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    stage_times: dict[str, float] = json.loads(result.stdout)
    return stage_times


def stages(root: Path, backend: str) -> dict[str, float]:
    """The pipeline's stages in this process, the garbage collector off as in the CLI."""
    gc.collect()
    gc.disable()
    try:
        return _stages(root, backend)
    finally:
        gc.enable()


def _stages(root: Path, backend: str) -> dict[str, float]:
    from policy_engine import parsecache
    from policy_engine.commands.check import LoadOptions, ledger_rules, load_all, load_measured, with_measured
    from policy_engine.engine import Facts, Settings, evaluate
    from policy_engine.loading import load_portfolio
    from policy_engine.report import build_report
    from policy_engine.reporters.json_ import render
    from policy_engine.sources import DirectorySource
    from policy_engine.targets import build_targets

    parsecache.configure(None)
    as_of = datetime(2026, 3, 1, tzinfo=UTC)
    out: dict[str, float] = {}
    start = time.perf_counter()
    load_portfolio(DirectorySource(root))
    out["load"] = time.perf_counter() - start
    start = time.perf_counter()
    load_measured(DirectorySource(root), "")
    out["residency read"] = time.perf_counter() - start
    start = time.perf_counter()
    loaded = load_all(LoadOptions(path=root, backend=backend))  # type: ignore[arg-type]
    out["compile"] = max(0.0, time.perf_counter() - start - out["load"] - out["residency read"])
    start = time.perf_counter()
    targets = build_targets(loaded.portfolio)
    out["targets"] = time.perf_counter() - start
    settings = Settings(as_of, "audit")
    rules = ledger_rules(loaded, "audit")
    facts = Facts()
    read = out.pop("residency read")
    if loaded.residency is not None:
        start = time.perf_counter()
        facts = with_measured(facts, loaded, as_of) or facts
        out["residency"] = time.perf_counter() - start + read
    start = time.perf_counter()
    outcome = evaluate(
        targets,
        loaded.policies,
        loaded.backend,
        settings,
        facts,
        loaded.portfolio.exceptions.exceptions,
        rules,
        loaded.matchers,
    )
    out["evaluate"] = time.perf_counter() - start
    start = time.perf_counter()
    report = build_report(
        outcome,
        loaded.policies,
        loaded.overrides,
        as_of=AS_OF,
        context="audit",
        backend=loaded.backend.name,
    )
    for _ in render(report):  # the JSON comes in pieces
        pass
    out["report"] = time.perf_counter() - start
    if backend == "cpp":
        out["evaluate floor"] = evaluation_floor(targets, loaded, as_of, facts)
    out["json.load floor"] = parsing_floor(root)
    return out


def evaluation_floor(targets: Any, loaded: Any, as_of: datetime, facts: Any) -> float:
    """The same compiled expressions over pre-built activations (with the same measured facts),
    in a bare loop."""
    from policy_engine.cel import VARIABLES

    base: dict[str, Any] = {name: {} for name in VARIABLES}
    base.update(targets.shared)
    base["now"] = as_of
    work = []
    for policy in loaded.policies:
        programs = [p for p in ([policy.match] + [v.program for v in policy.validations]) if p is not None]
        for target in targets.by_scope.get(policy.policy.doc.spec.scope, []):
            work.append((programs, target))
    activations = {}
    for _, target in work:
        if target.id not in activations:
            measured = facts.measured.get(target.id, {})
            activations[target.id] = loaded.backend.activation({**base, **target.data, "measured": measured})
    gc.collect()
    start = time.perf_counter()
    for programs, target in work:
        activation = activations[target.id]
        for program in programs:
            program.eval(activation)
    return time.perf_counter() - start


def parsing_floor(root: Path) -> float:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    as_json = root.parent / f"{root.name}.json"
    if not as_json.exists():
        docs = [yaml.load(p.read_text(), Loader=loader) for p in sorted((root / "models").glob("*.yaml"))]
        as_json.write_text(json.dumps(docs, default=str))
    start = time.perf_counter()
    json.loads(as_json.read_text())
    return time.perf_counter() - start


def measure(root: Path, size: int, backend: str, records: int, imports: float, repeat: int) -> dict[str, Any]:
    """One row: ``repeat`` cold runs, each followed by a warm one (so both are measured in the
    same minutes), reported as the median and the range; peak RSS is the largest seen."""
    colds: list[float] = []
    warms: list[float] = []
    rss = 0.0
    for _ in range(repeat):
        # Outside any repository: the CLI refuses a parse cache inside the portfolio's (as it
        # would be under bench/out), and a warm run would then be a cold one.
        with tempfile.TemporaryDirectory(prefix="policy-engine-bench-") as cache:
            cold, cold_rss = cli_run(root, backend, Path(cache))
            warm, warm_rss = cli_run(root, backend, Path(cache))
        colds.append(cold)
        warms.append(warm)
        rss = max(rss, cold_rss, warm_rss)
    cold, warm = statistics.median(colds), statistics.median(warms)
    row: dict[str, Any] = {
        "versions": size,
        "residency records": records,
        "backend": backend,
        "cold_s": round(cold, 3),
        "warm_s": round(warm, 3),
        "cold_range": [round(min(colds), 3), round(max(colds), 3)],
        "warm_range": [round(min(warms), 3), round(max(warms), 3)],
        "ms_per_version": round(cold / size * 1000, 3),
        "peak_rss_mb": round(rss),
        "import": round(imports, 3),
        **{k: round(v, 3) for k, v in stages_in_child(root, backend).items()},
    }
    if "evaluate floor" in row:
        row["evaluate / floor"] = round(row["evaluate"] / row["evaluate floor"], 2)
    print(
        f"  {root.name} {backend}: cold {_cell(row, 'cold_s')}s warm {_cell(row, 'warm_s')}s "
        f"rss {rss:.0f} MB",
        file=sys.stderr,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000,50000")
    parser.add_argument("--backends", default="cpp,python")
    parser.add_argument("--python-max", type=int, default=10000, help="largest size for the python backend")
    parser.add_argument(
        "--residency-max", type=int, default=1000, help="largest size also run with 90 days of residency"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument(
        "--repeat", type=int, default=3, help="cold and warm runs per row (median and range shown)"
    )
    parser.add_argument("--stages", type=Path, help=argparse.SUPPRESS)  # one stage run, as JSON
    args = parser.parse_args()
    if args.stages is not None:
        print(json.dumps(stages(args.stages, args.backends)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "policy_engine", quiet=1)
    rows = []
    imports = import_seconds()
    for size in [int(s) for s in args.sizes.split(",")]:
        runs = [(f"portfolio-{size}", 0, args.backends.split(","))]
        if size <= args.residency_max:
            runs.append((f"portfolio-{size}-residency", 90, ["cpp"]))
        for name, days, backends in runs:
            root = args.out / name
            records = generate(root, size, residency_days=days)
            for backend in backends:
                if backend == "python" and size > args.python_max:
                    continue
                rows.append(measure(root, size, backend, records, imports, max(1, args.repeat)))
    headers = [
        "versions",
        "residency records",
        "backend",
        "cold_s",
        "warm_s",
        "ms_per_version",
        "peak_rss_mb",
        "import",
        "load",
        "compile",
        "targets",
        "evaluate",
        "evaluate floor",
        "evaluate / floor",
        "residency",
        "report",
        "json.load floor",
    ]
    print(f"Python {platform.python_version()}, {os.cpu_count()} cores; seconds unless stated.\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "---:|" * len(headers))
    for row in rows:
        print("| " + " | ".join(_cell(row, h) for h in headers) + " |")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


def _cell(row: dict[str, Any], header: str) -> str:
    """A table cell: cold and warm times with their range when runs were repeated."""
    value = row.get(header, "–")
    low_high = row.get(header.replace("_s", "_range")) if header in ("cold_s", "warm_s") else None
    if low_high and low_high[0] != low_high[1]:
        return f"{value} ({low_high[0]}–{low_high[1]})"
    return str(value)


if __name__ == "__main__":
    main()
