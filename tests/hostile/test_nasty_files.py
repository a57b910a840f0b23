"""Nasty files, one test each: every one ends with exit 2 and ``file:line:col: message`` (or, where
the input is legal, with the same evaluation as its plain twin), within a time and memory bound.

Each case runs as a real process under an address-space limit, so an alias bomb or a huge file
cannot eat the machine unnoticed, and with a wall-clock limit. Cases that the core suite already
covers (``tests/core/test_bad_input.py``: broken YAML, one duplicate key, invalid UTF-8, a
numeric version, timestamps without a zone or on 30 February...) are not repeated; these extend
them to every level, every file kind and the extremes.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.conftest import EXAMPLE, REPO_ROOT, build_portfolio
from tests.core.test_bad_input import MODEL, PORTFOLIO, model, policy

AS_OF = "2025-06-30T00:00:00Z"
MEMORY_LIMIT = 1536 * 2**20  # bytes of address space for one run
TIME_LIMIT = 15.0  # seconds for one run; the slowest case takes about one
M = "models/m.yaml"
P = "portfolio.yaml"
X = "exceptions.yaml"
POL = "policies/check.yaml"
R = "residency/2025-06.jsonl"


def _bomb(levels: int = 9) -> str:
    """The billion laughs: nine levels of nine aliases, 9**9 values once expanded."""
    lines = ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*lol{level - 1}"] * 9)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int = 12) -> str:
    """Merge keys that repeat a mapping nine times per level (work, not memory, explodes)."""
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*m{level - 1}"] * 9)
        lines.append(f"m{level}: &m{level} {{<<: [{refs}]}}")
    return "\n".join(lines) + "\n"


def _nested_block(depth: int) -> str:
    return "id: m\nowner_team: ml\nversions:\n" + "".join(f"{'  ' * (i + 1)}- k{i}:\n" for i in range(depth))


EXCEPTION = """\
exceptions:
  - id: EXC-1
    policy: canary.max-duration
    target: "m@2"
    reason: Waiting for the load test
    created_at: "2025-06-20T00:00:00Z"
    expires_at: "2025-07-20T00:00:00Z"
"""

RECORD = (
    '{"deployment_id": "m-2-use1", "window_start": "2025-06-01T00:00:00Z", '
    '"window_end": "2025-06-02T00:00:00Z", "gpu_hours": 24.0}'
)


class Case(NamedTuple):
    files: dict[str, Any]  # content, or a function that makes it (large files are made when run)
    file: str  # the file the error must name
    line: int
    needles: list[str]  # words the error line must contain


CASES: dict[str, Case] = {
    # --- alias bombs
    "billion-laughs-in-a-model": Case(
        {M: MODEL + "notes:\n" + "".join(f"  {line}\n" for line in _bomb().splitlines())},
        M,
        24,
        ["alias bomb", "anchor on line 23"],
    ),
    "billion-laughs-in-portfolio-yaml": Case({P: _bomb()}, P, 6, ["alias bomb", "anchor on line 5"]),
    "billion-laughs-in-a-policy": Case({POL: _bomb()}, POL, 6, ["alias bomb"]),
    "merge-key-bomb": Case({X: _merge_bomb()}, X, 6, ["alias bomb"]),
    "alias-of-itself": Case({M: "id: m\nowner_team: ml\nversions: &v [*v]\n"}, M, 3, ["alias bomb"]),
    # --- nesting
    "deeply-nested-block-lists": Case({M: _nested_block(300)}, M, 54, ["nested too deeply", "at most 100"]),
    "deeply-nested-flow": Case(
        {M: "id: m\nowner_team: ml\nversions: " + "[" * 5000 + "]" * 5000 + "\n"},
        M,
        3,
        ["invalid YAML", "nesting depth"],
    ),
    "deeply-nested-policy-params": Case(
        {P: PORTFOLIO.replace("{max_pct: 20}", "{max_pct: " + "{a: " * 200 + "1" + "}" * 200 + "}")},
        P,
        10,
        ["nested too deeply"],
    ),
    # --- size
    "fifty-megabyte-model-file": Case(
        {M: lambda: MODEL + "description: " + "x" * 50_000_000 + "\n"},
        M,
        1,
        ["MiB", "above the 10 MiB limit"],
    ),
    "fifty-megabyte-residency-line": Case(
        {R: lambda: '{"deployment_id": "' + "x" * 50_000_000 + '"'}, R, 1, ["invalid JSON"]
    ),
    # --- encodings and characters
    "invalid-utf8-in-a-policy": Case(
        {POL: policy('    - expression: "true"\n      message: caf\xe9\n').encode("latin-1")},
        POL,
        10,
        ["invalid UTF-8 byte 0xe9"],
    ),
    "invalid-utf8-in-residency": Case(
        {R: RECORD.encode() + b"\n\xff\xfe\n"}, R, 2, ["invalid UTF-8 byte 0xff"]
    ),
    "utf16-file": Case({M: MODEL.encode("utf-16")}, M, 1, ["invalid UTF-8 byte 0xff"]),
    "nul-character": Case(
        {M: model("owner_team: ml\n", "owner_team: m\x00l\n")}, M, 2, ["U+0000 is not allowed"]
    ),
    "escape-sequence": Case(
        {M: model("owner_team: ml\n", "owner_team: m\x1b[2Jl\n")}, M, 2, ["U+001B is not allowed"]
    ),
    "tab-indentation": Case(
        {M: model("    stage: canary\n", "\tstage: canary\n")},
        M,
        5,
        ["invalid YAML", "cannot start any token"],
    ),
    "tab-before-a-list-item": Case(
        {M: model('  - version: "2"\n', '\t- version: "2"\n')}, M, 4, ["invalid YAML"]
    ),
    # --- duplicate keys at every level
    "duplicate-top-level-key": Case({M: MODEL + "owner_team: app\n"}, M, 18, ["duplicate key 'owner_team'"]),
    "duplicate-key-in-a-list-item": Case(
        {M: model("    stage: canary\n", "    stage: canary\n    stage: production\n")},
        M,
        6,
        ["duplicate key 'stage'", "first defined on line 5", "$.versions[0].stage"],
    ),
    "duplicate-key-four-levels-down": Case(
        {M: model("        replicas: {min: 1, max: 2}\n", "        replicas: {min: 1, max: 2, min: 3}\n")},
        M,
        16,
        ["duplicate key 'min'", "$.versions[0].deployments[0].replicas.min"],
    ),
    "duplicate-key-in-portfolio-yaml": Case(
        {P: PORTFOLIO + "rates: {gpu_hour: {nvidia-l4: 0.1}}\n"}, P, 11, ["duplicate key 'rates'"]
    ),
    "duplicate-key-in-exceptions": Case(
        {X: EXCEPTION + '    expires_at: "2025-07-21T00:00:00Z"\n'}, X, 8, ["duplicate key 'expires_at'"]
    ),
    "duplicate-key-in-a-policy": Case(
        {POL: policy('    - expression: "true"\n      message: a\n      message: b\n')},
        POL,
        11,
        ["duplicate key 'message'"],
    ),
    "duplicate-key-in-config": Case(
        {".policy-engine.yaml": "cel_backend: cpp\ncel_backend: python\n"},
        ".policy-engine.yaml",
        2,
        ["duplicate key 'cel_backend'"],
    ),
    "duplicate-key-through-quoting": Case(
        {M: MODEL + '"owner_team": app\n'}, M, 18, ["duplicate key 'owner_team'"]
    ),
    # --- keys that are not strings
    "boolean-key": Case({M: MODEL + "yes: 1\n"}, M, 18, ["mapping key 'yes' is not a string"]),
    "null-key": Case(
        {M: model("    stage: canary\n", "    ~: canary\n")}, M, 5, ["mapping key '~' is not a string"]
    ),
    "float-key-deep": Case(
        {M: model("        replicas: {min: 1, max: 2}\n", "        replicas: {1.5: 1, max: 2}\n")},
        M,
        16,
        ["mapping key '1.5' is not a string"],
    ),
    "collection-key": Case({P: PORTFOLIO + "? [a, b]\n: c\n"}, P, 11, ["is not a string"]),
    # --- numbers
    "integer-beyond-64-bits": Case(
        {
            M: model(
                "        replicas: {min: 1, max: 2}\n",
                "        replicas: {min: 1, max: 9223372036854775808}\n",
            )
        },
        M,
        16,
        ["integer 9223372036854775808 is out of range", "64-bit"],
    ),
    "five-thousand-digit-integer": Case(
        {M: model("\n      traffic_percent: 5\n", "\n      traffic_percent: " + "9" * 5000 + "\n")},
        M,
        10,
        ["is out of range"],
    ),
    "nan-quantity": Case(
        {M: model("\n      traffic_percent: 5\n", "\n      traffic_percent: .nan\n")},
        M,
        10,
        ["NaN and Inf are not allowed"],
    ),
    "inf-rate": Case(
        {P: PORTFOLIO.replace("nvidia-l4: 0.7", "nvidia-l4: .inf")}, P, 8, ["NaN and Inf are not allowed"]
    ),
    "nan-parameter": Case({P: PORTFOLIO.replace("{max_pct: 20}", "{max_pct: .nan}")}, POL, 10, ["finite"]),
    "nan-in-residency-json": Case({R: RECORD.replace("24.0", "NaN") + "\n"}, R, 1, ["NaN"]),
    "infinite-lifetime-in-config": Case(
        {".policy-engine.yaml": "exceptions:\n  max_lifetime_days: {error: .inf}\n"},
        ".policy-engine.yaml",
        2,
        ["finite number"],
    ),
    # --- timestamps
    "unquoted-timestamp-without-zone": Case(
        {M: model('"2025-06-20T00:00:00Z"', "2025-06-20T00:00:00")}, M, 8, ["no time zone", "add Z"]
    ),
    "unquoted-date-only": Case({M: model('"2025-06-20T00:00:00Z"', "2025-06-20")}, M, 8, ["not an RFC 3339"]),
    "impossible-time-of-day": Case(
        {M: model('"2025-06-20T00:00:00Z"', '"2025-06-20T25:61:00Z"')}, M, 8, ["not a real date and time"]
    ),
    "leap-second": Case({M: model('"2025-06-20T00:00:00Z"', '"2016-12-31T23:59:60Z"')}, M, 8, ["not a real"]),
    "past-the-year-9999-in-utc": Case(
        {M: model('"2025-06-20T00:00:00Z"', '"9999-12-31T23:00:00-05:00"')}, M, 8, ["out of range"]
    ),
    "year-zero": Case(
        {X: EXCEPTION.replace('"2025-07-20T00:00:00Z"', '"0000-07-20T00:00:00Z"')}, X, 7, ["not a real"]
    ),
    "duration-beyond-cel": Case(
        {M: model("max_duration: 14d", "max_duration: 99999999999d")}, M, 9, ["longer than a CEL duration"]
    ),
    # --- versions written as numbers
    "canary-of-version-as-number": Case(
        {M: model('      of_version: "1"\n', "      of_version: 1\n")}, M, 7, ["quote it", '"1"']
    ),
    "version-eight": Case({M: model('  - version: "2"\n', "  - version: 8\n")}, M, 4, ['quote it ("8")']),
    "version-as-boolean": Case({M: model('  - version: "2"\n', "  - version: yes\n")}, M, 4, ["quote it"]),
}


def _limits() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


class Outcome(NamedTuple):
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_limited(*args: str | Path) -> Outcome:
    """The real CLI under a memory and a time limit (a hang fails the test, never the run)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_") and k != "PRE_COMMIT"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "policy_engine", *(str(a) for a in args)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=TIME_LIMIT * 4,
        preexec_fn=_limits,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


PARAM_POLICY = policy(
    "    - expression: version.canary.traffic_percent <= params.max_pct\n      message: too much\n"
).replace("spec:\n", "spec:\n  params: {max_pct: {default: 50}}\n")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case in its own portfolio and its own limited process, two at a time."""
    base = tmp_path_factory.mktemp("nasty")
    calls: list[Callable[[], Outcome]] = []
    for name, case in CASES.items():
        # The policy that portfolio.yaml's policy_params names; the built-in pack is not needed.
        files = {POL: PARAM_POLICY}
        files.update(
            {path: content() if callable(content) else content for path, content in case.files.items()}
        )
        root = build_portfolio(base / name, portfolio=PORTFOLIO, models={"m.yaml": MODEL}, files=files)
        calls.append(
            lambda root=root: run_limited("check", root, "--as-of", AS_OF, "--no-cache", "--no-builtin")
        )
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda call: call(), calls))
    for name, case in CASES.items():  # do not leave 50 MB files for a later session to delete
        if any(callable(content) for content in case.files.values()):
            shutil.rmtree(base / name)
    return dict(zip(CASES, results, strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_nasty_file_is_a_located_input_error(outcomes: dict[str, Outcome], name: str) -> None:
    case = CASES[name]
    code, stdout, stderr, seconds = outcomes[name]
    assert code == 2, f"exit {code}\n{stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr[-2000:]
    assert "internal error" not in stderr, stderr[-2000:]
    assert stdout == ""
    assert seconds < TIME_LIMIT, f"took {seconds:.1f} s"
    pattern = re.compile(rf"^(?:\S*/)?{re.escape(case.file)}:{case.line}:\d+: ")
    lines = [line for line in stderr.splitlines() if pattern.match(line)]
    assert lines, f"no error at {case.file}:{case.line}:\n{stderr[-2000:]}"
    assert any(all(needle in line for needle in case.needles) for line in lines), (case.needles, lines)
    assert all(len(line) < 1000 for line in stderr.splitlines()), "one readable line per error"


# ---------------------------------------------------------------------------- legal but odd


def _report(root: Path, *extra: str) -> dict[str, Any]:
    code, stdout, stderr, seconds = run_limited(
        "check", root, "--as-of", AS_OF, "--format", "json", "--all", "--no-cache", *extra
    )
    assert code in (0, 1), stderr
    assert seconds < TIME_LIMIT
    data: dict[str, Any] = json.loads(stdout)
    return data


def test_byte_order_marks_are_legal(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark on every file (Windows editors write one) changes nothing."""
    plain = tmp_path / "plain"
    shutil.copytree(EXAMPLE, plain)
    marked = tmp_path / "marked"
    shutil.copytree(EXAMPLE, marked)
    for path in marked.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".jsonl"):
            path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    expected, found = _report(plain), _report(marked)
    assert found["summary"] == expected["summary"]
    assert [(f["fingerprint"], f["status"], f["location"]) for f in found["findings"]] == [
        (f["fingerprint"], f["status"], f["location"]) for f in expected["findings"]
    ]


def test_tabs_inside_values_and_comments_are_legal(tmp_path: Path) -> None:
    """YAML forbids tabs as indentation only; elsewhere they are ordinary characters."""
    text = model("owner_team: ml\n", "owner_team: ml\t# tab before a comment\n").replace(
        "max_duration: 14d", 'max_duration: "14d"\t'
    )
    root = build_portfolio(tmp_path / "p", models={"m.yaml": text})
    report = _report(root)
    assert report["summary"]["by_status"].get("error", 0) == 0


def test_symlink_leaving_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.yaml").write_text(MODEL, encoding="utf-8")
    (outside / "portfolio.yaml").write_text(PORTFOLIO, encoding="utf-8")
    (outside / "policy.yaml").write_text(
        policy('    - expression: "true"\n      message: ok\n'), encoding="utf-8"
    )
    for link, target, shown in (
        ("models/evil.yaml", outside / "m.yaml", "models/evil.yaml"),
        ("portfolio.yaml", outside / "portfolio.yaml", "portfolio.yaml"),
        ("policies/evil.yaml", outside / "policy.yaml", "policies/evil.yaml"),
        ("models/up.yaml", Path("../../outside/m.yaml"), "models/up.yaml"),
    ):
        root = build_portfolio(
            tmp_path / link.replace("/", "-"), portfolio=PORTFOLIO, models={"m.yaml": MODEL}
        )
        (root / link).unlink(missing_ok=True)
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(target)
        code, stdout, stderr, _ = run_limited("check", root, "--as-of", AS_OF, "--no-cache")
        assert code == 2, (link, stderr)
        assert re.search(
            rf"^\S*{re.escape(shown)}:1:1: .*points outside the portfolio directory", stderr, re.M
        ), stderr
        assert stdout == ""


def test_a_directory_symlinked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    """Each file's directory is resolved once: a plain file under a symlinked directory is
    outside all the same."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.yaml").write_text(MODEL, encoding="utf-8")
    root = build_portfolio(tmp_path / "p", portfolio=PORTFOLIO, models={})
    shutil.rmtree(root / "models", ignore_errors=True)
    (root / "models").symlink_to(outside, target_is_directory=True)
    code, stdout, stderr, _ = run_limited("check", root, "--as-of", AS_OF, "--no-cache")
    assert code == 2, stderr
    assert re.search(r"^\S*models/m\.yaml:1:1: .*points outside the portfolio directory", stderr, re.M)
    assert stdout == ""


def test_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    root = build_portfolio(tmp_path / "p", portfolio=PORTFOLIO, models={}, files={POL: PARAM_POLICY})
    (root / "shared").mkdir()
    (root / "models").mkdir()
    (root / "shared" / "m.yaml").write_text(MODEL, encoding="utf-8")
    (root / "models" / "m.yaml").symlink_to(root / "shared" / "m.yaml")
    report = _report(root)
    assert any(f["target"] == "m@2" for f in report["findings"])


def test_empty_directory(tmp_path: Path) -> None:
    code, stdout, stderr, _ = run_limited("check", tmp_path, "--as-of", AS_OF)
    assert code == 2
    assert "portfolio.yaml:1:1: portfolio.yaml not found; is this a portfolio repository?" in stderr
    assert stdout == ""


def test_empty_git_repository(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for extra in ((), ("--base", "main"), ("--history",)):
        code, _stdout, stderr, _ = run_limited("check", tmp_path, "--as-of", AS_OF, *extra)
        assert code == 2, (extra, stderr)
        assert "Traceback" not in stderr
        assert "portfolio.yaml not found" in stderr or "no commits yet" in stderr, stderr
    build_portfolio(tmp_path, portfolio=PORTFOLIO, models={"m.yaml": MODEL})
    code, _, stderr, _ = run_limited("check", tmp_path, "--as-of", AS_OF, "--base", "main")
    assert code == 2
    assert "the repository has no commits yet (HEAD is unborn)" in stderr


def test_portfolio_without_models_is_valid(tmp_path: Path) -> None:
    root = build_portfolio(tmp_path / "p", portfolio=PORTFOLIO, models={}, files={POL: PARAM_POLICY})
    report = _report(root)
    assert report["summary"]["exit_code"] == 0


def test_a_huge_legal_model_file_is_bounded(tmp_path: Path) -> None:
    """A large legal file (20,000 versions) is a result within seconds, not a hang."""
    versions = "".join(
        f'  - version: "{i}"\n    stage: retired\n    created_at: "2025-01-01T00:00:00Z"\n'
        for i in range(20_000)
    )
    text = "id: big\nowner_team: ml\nversions:\n" + versions
    assert 1_000_000 < len(text) < 10 * 2**20
    root = build_portfolio(tmp_path / "p", portfolio=PORTFOLIO, models={"big.yaml": text})
    report = _report(root, "--no-builtin")
    assert report["summary"]["exit_code"] == 0
