"""Fused evaluation (one CEL call per batch of targets) gives exactly the unfused findings."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policy_engine import engine, parsecache
from policy_engine.cel import CelCompileError
from policy_engine.commands.check import LoadOptions, ledger_rules, load_all
from policy_engine.engine import Facts, Outcome, Settings, evaluate
from policy_engine.fusion import (
    ROW,
    ROWS,
    TABLE,
    Fusion,
    expression_texts,
    policy_text,
    rebind,
    selected_fields,
)
from policy_engine.targets import build_targets

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "acme-portfolio"
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

NAMES = {"version": "pe_table[pe_row.version]", "signoff": "pe_row.signoff"}


@pytest.fixture(autouse=True)
def fuse_small_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fuse however few targets there are, so that these small portfolios exercise it."""
    monkeypatch.setattr(engine, "FUSE_FROM", 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('version.stage == "x"', 'pe_table[pe_row.version].stage == "x"'),
        ("has(version.canary) // version", "has(pe_table[pe_row.version].canary) // version"),
        ("x.version + version_count", "x.version + version_count"),
        ("'version' + r\"signoff\" + '''version'''", "'version' + r\"signoff\" + '''version'''"),
        (
            "version.signoffs.all(s, s.by == signoff.by)",
            "pe_table[pe_row.version].signoffs.all(s, s.by == pe_row.signoff.by)",
        ),
        ("size(version) > 0", "size(pe_table[pe_row.version]) > 0"),
        ("version . stage", "pe_table[pe_row.version] . stage"),
    ],
)
def test_rebind_rewrites_free_references_only(text: str, expected: str) -> None:
    assert rebind(text, NAMES) == expected


@pytest.mark.parametrize(
    "text",
    [
        "version.deployments.all(version, version.replicas.min > 0)",  # a macro shadows a variable
        "xs.exists(pe_row, pe_row > 1)",  # a macro binds one of the engine's names
    ],
)
def test_rebind_refuses_what_it_cannot_rewrite_safely(text: str) -> None:
    assert rebind(text, NAMES) is None


def test_every_built_in_policy_fuses() -> None:
    """A pack policy left to the exact path would cost its full price on every target."""
    parsecache.configure(None)
    loaded = load_all(LoadOptions(path=EXAMPLE))
    names = {n: f"{TABLE}[{ROW}.{n}]" for n in ("model", "version")}
    names.update({n: f"{ROW}.{n}" for n in ("deployment", "signoff", "measured", "history", "old", "change")})
    inlined = []
    for policy in loaded.policies:
        text = policy_text(policy, names)
        assert text is not None, policy.id
        try:
            loaded.backend.compile(f"{ROWS}.map({ROW}, [{text}])")
        except CelCompileError:  # bindings nested past the runtime's limit: fused inlined
            text = policy_text(policy, names, bind=False)
            assert text is not None, policy.id
            loaded.backend.compile(f"{ROWS}.map({ROW}, [{text}])")  # raises if it does not compile
            inlined.append(policy.id)
    # Its long messages sit inside nine bindings; every other policy fuses with bound variables.
    assert inlined == ["production.entry.load-test"]


def test_a_policy_too_deep_to_fuse_bound_still_shares_the_others_call() -> None:
    """One policy whose bound text nests past the parser's limit is fused inlined, in the same
    program as the rest: one CEL call per batch, not one per policy."""
    parsecache.configure(None)
    loaded = load_all(LoadOptions(path=EXAMPLE))
    scoped = [p for p in loaded.policies if p.policy.doc.spec.scope == "version"]
    fusion = Fusion(scoped, loaded.backend, {})
    groups = fusion._compiled((True,) * len(scoped), ("model", "version", "history", "change"))
    assert [sorted(members) for members, _ in groups] == [list(range(len(scoped)))]
    assert all(program is not None for _, program in groups)


@pytest.mark.parametrize(
    ("text", "version", "signoff"),
    [
        ("version.stage == 'x' && has(version.canary)", {"stage", "canary"}, set()),
        ("version . stage == signoff.role // size(version)", {"stage"}, {"role"}),
        ("version.deployments.all(d, d.warm) && 'version.x' != ''", {"deployments"}, set()),
        ("size(version) > 0", None, set()),
        ("version['stage'] == 'x'", None, set()),
        ("version.all(k, k != '')", None, set()),
        ("version.size() > 0", None, set()),
        ("fmt(version)", None, set()),
        ("[1].exists(version, version > 0)", None, set()),
        ("version.stage == '' || version", None, set()),
    ],
)
def test_selected_fields_keep_a_whole_map_wherever_it_is_used_whole(
    text: str, version: set[str] | None, signoff: set[str]
) -> None:
    fields = selected_fields([text])
    assert fields["version"] == (None if version is None else frozenset(version))
    assert fields["signoff"] == frozenset(signoff)
    assert fields["model"] == frozenset()


def test_the_built_in_pack_reads_fields_only_so_its_batches_carry_fewer() -> None:
    loaded = load_all(LoadOptions(path=EXAMPLE))
    for scope in ("version", "deployment", "signoff"):
        policies = [p for p in loaded.policies if p.policy.doc.spec.scope == scope]
        fields = selected_fields(t for p in policies for t in expression_texts(p))
        version, model = fields["version"], fields["model"]
        assert version is not None, scope
        assert model is not None, scope
        assert "id" in version, scope
        assert "created_at" not in version, scope


def _outcomes(root: Path, as_of: datetime, facts: Facts, keep_all: bool) -> tuple[Outcome, Outcome]:
    loaded = load_all(
        LoadOptions(path=root, policy_dirs=(root / "policies",) if (root / "policies").is_dir() else ())
    )
    targets = build_targets(loaded.portfolio)
    settings = Settings(as_of, "audit", keep_all=keep_all)
    rules = ledger_rules(loaded, "audit")
    exceptions = loaded.portfolio.exceptions.exceptions
    fused, exact = (
        evaluate(
            targets,
            loaded.policies,
            loaded.backend,
            settings,
            facts,
            exceptions,
            rules,
            loaded.matchers,
            fuse=fuse,
        )
        for fuse in (True, False)
    )
    return fused, exact


def _same(fused: Outcome, exact: Outcome) -> None:
    assert [f.model_dump() for f in fused.findings] == [f.model_dump() for f in exact.findings]
    assert fused.by_status == exact.by_status
    assert fused.by_severity == exact.by_severity
    assert fused.waived_by == exact.waived_by


@pytest.mark.parametrize("keep_all", [False, True])
@pytest.mark.parametrize("as_of", ["2025-06-30T00:00:00Z", "2025-09-12T00:00:00Z"])
def test_example_portfolio_fused_equals_exact(as_of: str, keep_all: bool) -> None:
    parsecache.configure(None)
    fused, exact = _outcomes(EXAMPLE, datetime.fromisoformat(as_of).astimezone(UTC), Facts(), keep_all)
    _same(fused, exact)
    assert any(f.status == "fail" for f in fused.findings)


CUSTOM = {
    # Errors on every version that is not a canary: a batch fails and is split down to them.
    "errors": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.errors, severity: error}
spec:
  scope: version
  validations:
    - expression: version.canary.started_at != ''
      message: canary start recorded
""",
    # A string where a boolean belongs: an error finding, exactly as unfused.
    "non-bool": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.non-bool, severity: warning}
spec:
  scope: version
  match: version.stage == 'shadow'
  validations:
    - expression: version.stage
      message: never a boolean
""",
    # Binds `version` itself inside a macro: cannot be rewritten, so decided the exact way.
    "shadowing": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.shadowing, severity: warning}
spec:
  scope: version
  validations:
    - expression: version.deployments.all(version, version.replicas.min >= 1)
      message: every deployment keeps a warm replica
""",
    # A message that is not a string falls back to the static message.
    "message": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.message, severity: info}
spec:
  scope: deployment
  variables:
    - {name: warm, expression: deployment.replicas.min}
  validations:
    - expression: variables.warm < 2
      messageExpression: deployment.accelerator
      message: static message
    - expression: variables.warm < 3
      messageExpression: "'deployment ' + deployment.id + ' keeps ' + fmt(variables.warm) + ' warm'"
      message: static message
""",
    # About 1,600 comprehension iterations per target: a batch of 32 runs out of the runtime's
    # iteration budget, a single target does not.
    "heavy": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.heavy, severity: warning}
spec:
  scope: signoff
  params:
    xs: {default: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                   21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]}
  validations:
    - expression: params.xs.all(x, params.xs.all(y, x + y > 2.0 || signoff.role == 'ml'))
      message: heavy
""",
    # Reads facts that only some targets have: batches group targets by what can run.
    "facts": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.facts, severity: warning}
spec:
  scope: deployment
  requires: [measured]
  validations:
    - expression: measured.gpu_util_avg >= 0.3
      messageExpression: "deployment.id + ' is ' + fmt(measured.gpu_util_avg) + ' busy'"
      message: busy enough
""",
    # The whole map, not a field of it: every field must reach the fused call.
    "whole": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.whole, severity: warning}
spec:
  scope: deployment
  validations:
    - expression: size(version) < 5 && model.all(k, k != 'id')
      messageExpression: "deployment.id + ' sees ' + fmt(size(version)) + ' version fields'"
      message: whole
""",
    # A field read by index: the map is kept whole there too.
    "index": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.index, severity: warning}
spec:
  scope: signoff
  validations:
    - expression: version['stage'] != 'production' || signoff.role != 'ml'
      message: index
""",
    "extra": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.extra, severity: warning}
spec:
  scope: signoff
  validations:
    - expression: "!has(signoff.verified) || signoff.verified"
      message: verified
""",
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fusion") / "portfolio"
    generate(root, 400, seed=11)
    (root / "policies").mkdir()
    for name, text in CUSTOM.items():
        (root / "policies" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return root


def _facts(root: Path) -> Facts:
    loaded = load_all(LoadOptions(path=root))
    targets = build_targets(loaded.portfolio)
    measured: dict[str, dict[str, Any]] = {}
    extra: dict[str, dict[str, dict[str, Any]]] = {}
    for index, target in enumerate(targets.by_scope["deployment"]):
        if index % 3:
            measured[target.id] = {"gpu_util_avg": (index % 10) / 10}
    for index, target in enumerate(targets.by_scope["signoff"]):
        if index % 4 == 0:
            extra[target.id] = {"signoff": {"verified": index % 8 == 0, "verification": "test"}}
    return Facts(measured=measured, extra=extra, available=frozenset({"measured"}))


@pytest.mark.parametrize("keep_all", [False, True])
def test_synthetic_portfolio_with_hostile_policies_fused_equals_exact(
    synthetic: Path, keep_all: bool
) -> None:
    parsecache.configure(None)
    fused, exact = _outcomes(synthetic, datetime(2026, 3, 1, tzinfo=UTC), _facts(synthetic), keep_all)
    _same(fused, exact)
    statuses = {(f.policy_id, f.status) for f in fused.findings}
    for expected in [
        ("t.errors", "error"),
        ("t.non-bool", "error"),
        ("t.shadowing", "fail"),
        ("t.message", "fail"),
        ("t.heavy", "fail"),
        ("t.facts", "fail"),
        ("t.extra", "fail"),
        ("t.whole", "fail"),
        ("t.index", "fail"),
        ("canary.max-duration", "fail"),
    ]:
        assert expected in statuses
    messages = {f.message for f in fused.findings if f.policy_id == "t.message"}
    assert "static message" in messages
    assert any(m.startswith("deployment ") and m.endswith(" warm") for m in messages)
