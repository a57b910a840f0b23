"""Hypothesis strategies for hostile files: valid documents mutated structurally, YAML text
mutated character by character, random bytes, and CEL expressions built from a small grammar.

Every strategy starts from something the engine accepts, so most generated cases are *almost*
valid: they reach the schema, the CEL compiler and the evaluator, not only the YAML parser.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re
from typing import Any

import yaml
from hypothesis import strategies as st

# ---------------------------------------------------------------------------- base documents

PORTFOLIO: dict[str, Any] = {
    "schema_version": 1,
    "kind": "InferencePortfolio",
    "portfolio": {"id": "t", "name": "Test portfolio", "currency": "USD", "hours_per_month": 730},
    "teams": [
        {"id": "plat", "function": "platform", "cost_center": "CC-1"},
        {"id": "ml", "function": "ml", "cost_center": "CC-2"},
        {"id": "fin", "function": "finance", "cost_center": "CC-9"},
    ],
    "roster": [
        {"login": "pat", "name": "Pat", "team": "plat", "roles": ["platform"]},
        {"login": "mel", "name": "Mel", "team": "ml", "roles": ["ml"]},
        {
            "login": "fay",
            "name": "Fay",
            "team": "fin",
            "roles": ["finance"],
            "limits": {"approve_monthly_delta": 50000},
        },
    ],
    "authority": {
        "cost_tiers": [
            {"max_monthly_delta": 2000, "required_roles": ["platform"]},
            {"max_monthly_delta": None, "required_roles": ["platform", "finance"]},
        ],
        "signoff_max_validity": "2160h",
    },
    "rates": {"gpu_hour": {"nvidia-l4": 0.71}, "overhead_per_replica_hour": 0.09},
    "policy_params": {"acme.probe": {"max_days": 14}},
}

DIGEST = "sha256:" + "ab" * 32

MODEL: dict[str, Any] = {
    "id": "clf",
    "owner_team": "ml",
    "slo": {"p95_latency_ms": 200, "expected_peak_rps": 10},
    "entry_criteria": {"eval": [{"type": "accuracy", "min": 0.9}], "load_test": {"min_peak_multiple": 1.5}},
    "exit_criteria_defaults": {"min_traffic_share": 0.02, "traffic_window": "720h"},
    "versions": [
        {
            "version": "1",
            "stage": "production",
            "created_at": "2025-01-01T00:00:00Z",
            "entry_evidence": {
                "eval": {"metrics": [{"type": "accuracy", "value": 0.93}]},
                "residency_estimate": {"monthly_expected": 900.0},
            },
            "deployments": [
                {
                    "id": "clf-v1",
                    "endpoint": "clf",
                    "region": "us-east-1",
                    "traffic_percent": 90,
                    "replicas": {"min": 1, "max": 3},
                    "accelerator": {"type": "nvidia-l4", "count": 1},
                    "selectors": {"k8s_labels": {"app": "clf-v1"}, "prometheus": {"app": "clf-v1"}},
                }
            ],
            "signoffs": [
                {
                    "role": "platform",
                    "by": "pat",
                    "at": "2025-05-01T00:00:00Z",
                    "expires_at": "2025-08-01T00:00:00Z",
                    "scope": {"kind": "promotion", "subject_digest": DIGEST},
                }
            ],
        },
        {
            "version": "2",
            "stage": "canary",
            "canary": {
                "of_version": "1",
                "started_at": "2025-06-20T00:00:00Z",
                "max_duration": "14d",
                "traffic_percent": 10,
            },
            "deployments": [
                {
                    "id": "clf-v2",
                    "endpoint": "clf",
                    "region": "us-east-1",
                    "traffic_percent": 10,
                    "replicas": {"min": 1, "max": 2},
                    "accelerator": {"type": "nvidia-l4", "count": 1},
                }
            ],
        },
        {
            "version": "0",
            "stage": "fallback",
            "fallback": {
                "for_version": {"model": "clf", "version": "1"},
                "review_by": "2025-09-01T00:00:00Z",
            },
            "exit_criteria": {"retire_by": "2025-12-01T00:00:00Z"},
        },
    ],
}


def _other_model() -> dict[str, Any]:
    """A second model beside ``MODEL``, with its own id and deployment ids."""
    other = copy.deepcopy(MODEL)
    other["id"] = "other"
    for version in other["versions"]:
        for deployment in version.get("deployments", []):
            deployment["id"] = "other-" + deployment["id"]
            deployment["endpoint"] = "other"
    return other


OTHER_MODEL = _other_model()

EXCEPTIONS: dict[str, Any] = {
    "exceptions": [
        {
            "id": "EXC-1",
            "policy": "acme.probe",
            "target": "clf@2",
            "reason": "Waiting for the load test",
            "ticket": "OPS-1",
            "created_at": "2025-06-20T00:00:00Z",
            "expires_at": "2025-07-15T00:00:00Z",
            "signoffs": [
                {"role": "platform", "by": "pat", "at": "2025-06-20T00:00:00Z"},
                {"role": "finance", "by": "fay", "at": "2025-06-20T01:00:00Z"},
            ],
        },
        {
            "id": "EXC-2",
            "policy": "acme.probe-deployments",
            "match": "deployment.replicas.min >= 1",
            "reason": "Pilot",
            "expires_at": "2025-07-30T00:00:00Z",
            "signoffs": [{"role": "platform", "by": "pat", "at": "2025-06-20T00:00:00Z"}],
        },
    ]
}

CONFIG: dict[str, Any] = {
    "policies": {"overrides": {"acme.probe": {"severity": "warning", "params": {"max_days": 20}}}},
    "exceptions": {"max_lifetime_days": {"error": 60}},
}

POLICY: dict[str, Any] = {
    "apiVersion": "policy-engine/v1",
    "kind": "Policy",
    "metadata": {"id": "acme.fuzzed", "title": "Fuzzed", "severity": "error", "tags": ["fuzz"]},
    "spec": {
        "scope": "version",
        "match": "version.stage == 'canary'",
        "params": {"max_days": {"default": 14, "description": "cap"}},
        "variables": [
            {"name": "age", "expression": "now - timestamp(version.canary.started_at)"},
            {"name": "limit", "expression": "duration(version.canary.max_duration)"},
        ],
        "validations": [
            {
                "name": "within",
                "expression": "variables.age <= variables.limit",
                "messageExpression": "'canary ' + version.id + ' ran ' + fmt(variables.age)",
                "message": "Canary ran too long",
                "remediation": "Decide it.",
            },
            {"expression": "variables.limit <= days(params.max_days)", "message": "Cap exceeded"},
        ],
        "enforcement": {"pre-commit": "advisory", "pull-request": "soft", "audit": "hard"},
    },
}

RECORD: dict[str, Any] = {
    "schema_version": 1,
    "deployment_id": "clf-v1",
    "window_start": "2025-06-01T00:00:00Z",
    "window_end": "2025-06-02T00:00:00Z",
    "coverage": 1.0,
    "gpu_type": "nvidia-l4",
    "gpu_hours": 24.0,
    "warm_replica_hours": 24.0,
    "gpu_util_avg": 0.4,
    "cost": {"total": 19.2, "gpu": 17.04, "other": 2.16, "currency": "USD", "basis": "effective"},
    "requests": 1000,
    "tokens_in": 5000,
    "tokens_out": 700,
    "traffic_share": 0.9,
    "labels": {"team": "ml"},
    "provenance": {"source": "opencost"},
}

# Cheap policies that read much of every target, so that mutated data reaches the evaluator on
# every scope. Loaded with --no-builtin --policies (the built-in pack costs ~0.1 s to compile).
PROBE_PACK = {
    "acme.probe.yaml": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.probe, severity: error}
spec:
  scope: version
  match: version.stage in ['canary', 'production', 'fallback']
  params: {max_days: 14}
  variables:
    - {name: replicas, expression: "version.deployments.map(d, d.replicas.min)"}
    - name: age
      expression: >-
        has(version.canary.started_at) ? now - timestamp(version.canary.started_at) : duration('0s')
  validations:
    - name: clock
      expression: variables.age <= days(params.max_days)
      messageExpression: "'ran ' + fmt(variables.age) + ' on ' + fmt(variables.replicas)"
      message: too long
    - name: signed
      expression: >-
        version.stage != 'production'
        || version.signoffs.all(s, s.by in roster && timestamp(s.expires_at) > now)
      messageExpression: "fmt(version.signoffs.map(s, s.role + ':' + s.by))"
      message: unsigned
""",
    "acme.probe-deployments.yaml": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.probe-deployments, severity: warning}
spec:
  scope: deployment
  validations:
    - expression: deployment.replicas.min <= deployment.replicas.max && deployment.traffic_percent >= 0.0
      messageExpression: "deployment.id + ' ' + fmt(deployment.replicas.min) + ' ' + fmt(deployment)"
      message: replicas
""",
    "acme.probe-rest.yaml": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.probe-portfolio, severity: info}
spec:
  scope: portfolio
  validations:
    - expression: size(portfolio.roster) >= 0 && portfolio.rates.gpu_hour.all(k, k != '')
      messageExpression: "fmt(portfolio.teams.map(t, t.id))"
      message: portfolio
""",
    "acme.probe-signoffs.yaml": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.probe-signoffs, severity: warning}
spec:
  scope: signoff
  validations:
    - expression: timestamp(signoff.at) <= timestamp(signoff.expires_at)
      messageExpression: "signoff.by + ' ' + fmt(timestamp(signoff.at))"
      message: signoff
""",
    "acme.probe-exceptions.yaml": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.probe-exceptions, severity: warning}
spec:
  scope: exception
  validations:
    - expression: exception.active || exception.expired || size(exception.problems) > 0
      messageExpression: "exception.id + ': ' + fmt(exception.problems)"
      message: exception
""",
    "acme.probe-endpoints.yaml": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.probe-endpoints, severity: info}
spec:
  scope: endpoint
  validations:
    - expression: endpoint.traffic_sum <= 100.0
      messageExpression: "endpoint.name + ' ' + fmt(endpoint.traffic_sum)"
      message: endpoint
""",
    "acme.probe-measured.yaml": """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.probe-measured, severity: warning}
spec:
  scope: deployment
  requires: [measured]
  validations:
    - expression: measured.cost >= 0.0 && measured.coverage <= 1.0
      messageExpression: "fmt(measured.cost) + ' ' + fmt(measured.gpu_hours)"
      message: measured
""",
}

# ---------------------------------------------------------------------------- hostile values

TRICKY_STRINGS = [
    "2025-06-20T00:00:00Z",
    "2025-06-20 00:00",
    "2025-06-20T00:00:00",
    "2025-02-30T00:00:00Z",
    "2025-13-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-05:00",
    "9999-12-31T23:59:59Z",
    "2025-06-20T00:00:00+99:99",
    "2016-12-31T23:59:60Z",
    "2025-06-20",
    "14d",
    "336h",
    "0s",
    "-1h",
    "1.5.5h",
    "1e400h",
    "9" * 40 + "d",
    "",
    " ",
    "canary",
    "production",
    "retired",
    "proposed",
    "platform",
    "finance",
    "pat",
    "clf@2",
    "clf@1/clf-v1",
    "exception:EXC-1",
    DIGEST,
    "sha256:zz",
    "nvidia-l4",
    "acme.probe",
    "x" * 5000,
    "\u202e\u0000\u0007",
    "\ud7ff\ue000",
    "line\nbreak",
    "${HOME}",
    "{{ template }}",
    "'); true || ('",
    "version.stage == 'canary'",
    "has(version.canary)",
    "(((((",
    "[1, 2, 3].map(x, [1, 2].map(y, x * y))",
]

INTS = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**40, 10**400]),
)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 0.1, 100.0000001]),
)
SCALARS = st.one_of(
    INTS,
    FLOATS,
    st.booleans(),
    st.none(),
    st.sampled_from(TRICKY_STRINGS),
    st.text(max_size=30),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=8,
)
KEYS = st.one_of(
    st.sampled_from(["id", "version", "stage", "canary", "deployments", "signoffs", "expires_at", "<<"]),
    st.text(min_size=1, max_size=12),
    st.integers(min_value=-5, max_value=5),
    st.booleans(),
)


# ---------------------------------------------------------------------------- structural mutation


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a document, outermost first."""
    found: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                found.append((node, key))
                stack.append(value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found.append((node, index))
                stack.append(value)
    return found


_OPERATIONS = ("replace", "replace", "delete", "add", "duplicate", "wrap", "typo", "number")


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_mutations: int = 4) -> Any:
    """``base`` with one to ``max_mutations`` structural changes."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        slots = _slots(doc)
        if not slots:
            return draw(VALUES)
        container, key = draw(st.sampled_from(slots))
        operation = draw(st.sampled_from(_OPERATIONS))
        if operation == "replace":
            container[key] = draw(VALUES)
        elif operation == "delete":
            del container[key]
        elif operation == "add":
            target = container[key] if isinstance(container[key], dict | list) else container
            if isinstance(target, dict):
                target[draw(KEYS)] = draw(VALUES)
            else:
                target.insert(draw(st.integers(0, len(target))), draw(VALUES))
        elif operation == "duplicate":
            value = copy.deepcopy(container[key])
            if isinstance(container, list):
                container.append(value)
            else:
                container[key] = [value, value]
        elif operation == "wrap":
            container[key] = draw(st.sampled_from([[container[key]], {"x": container[key]}]))
        elif operation == "typo" and isinstance(container, dict) and isinstance(key, str) and key:
            index = draw(st.integers(0, len(key) - 1))
            container[
                key[:index] + draw(st.sampled_from(["", "_", "x", key[index].upper()])) + key[index + 1 :]
            ] = container.pop(key)
        elif operation == "number":
            container[key] = draw(st.sampled_from([8, 1.10, 2.0, True]))
    return doc


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T")
_DURATION = re.compile(r"^\d+(\.\d+)?[dhms]$")
_STAGES = ["proposed", "canary", "shadow", "production", "fallback", "deprecated", "retired"]
VALID_TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00+14:00",
    "2025-06-29T23:59:59.999999999Z",
    "2025-06-30T00:00:00Z",
    "2025-06-30T00:00:00-12:00",
    "2038-01-19T03:14:08Z",
    "9999-12-31T23:59:59Z",
]
VALID_DURATIONS = ["0s", "1ns", "0.5h", "14d", "336h", "87600000h", "3650000d"]


def _similar(draw: st.DrawFn, value: Any) -> Any:
    """Another value of the same kind: the schema accepts it, the policies must cope with it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.sampled_from([0, 1, 7, 2**31, 2**53, 2**62]))
    if isinstance(value, float):
        return draw(st.sampled_from([0.0, 5e-324, 1e-9, 0.5, 99.999, 1e15, 1e300]))
    if isinstance(value, str):
        if _TIMESTAMP.match(value):
            return draw(st.sampled_from(VALID_TIMESTAMPS))
        if _DURATION.match(value):
            return draw(st.sampled_from(VALID_DURATIONS))
        if value in _STAGES:
            return draw(st.sampled_from(_STAGES))
        return draw(st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(["x", "a" * 300, "é✓"])))
    if isinstance(value, list):
        return draw(st.sampled_from([[], value[:1], list(reversed(value))]))
    return value


@st.composite
def tweaked(draw: st.DrawFn, base: Any, max_changes: int = 4) -> Any:
    """``base`` with values replaced by others of the same kind: mostly still valid, so the
    evaluator (not only the loader) sees extreme dates, durations, numbers and stages."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_changes))):
        slots = [(c, k) for c, k in _slots(doc) if not isinstance(c[k], dict)]
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        container[key] = _similar(draw, container[key])
    return doc


def dump_yaml(doc: Any, flow: bool | None = None, unicode: bool = True) -> str:
    """YAML text for any generated document (PyYAML quotes what needs quoting)."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=unicode, default_flow_style=flow, width=200)


@st.composite
def yaml_text(draw: st.DrawFn, base: Any) -> str:
    doc = draw(mutated(base))
    return dump_yaml(doc, draw(st.sampled_from([None, False, True])), draw(st.booleans()))


# ---------------------------------------------------------------------------- text mutation

SNIPPETS = [
    "\t",
    ": ",
    "- ",
    "&a ",
    "*a",
    "*nowhere",
    "!!python/object/apply:os.system ['true'] ",
    "!!binary aGk= ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!ruby/hash ",
    "<<: *a\n",
    "{",
    "}",
    "[",
    "]",
    "'",
    '"',
    "\x00",
    "\x07",
    "\ufeff",
    "\r",
    "\n---\n",
    "\n...\n",
    "%YAML 1.1\n",
    "%TAG ! tag:evil.example,2000:\n",
    "? ",
    "|\n",
    ">-\n",
    "# ",
    "\\",
    "\u2028",
    "\U0001f600",
    "~",
    "yes",
    "0x1F",
    "0o17",
    "1_000",
    ".inf",
    ".nan",
    "2025-06-20",
    "99999999999999999999999",
    "9" * 5000,
    "\n  ",
    "\n" + "  " * 40,
]


@st.composite
def text_mutated(draw: st.DrawFn, text: str, max_edits: int = 3) -> str:
    """``text`` with a few edits where YAML is most fragile (indentation, quotes, tokens)."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, max_edits))):
        operation = draw(
            st.sampled_from(["insert", "insert", "delete", "duplicate_line", "swap_lines", "cut"])
        )
        joined = "\n".join(lines)
        if operation == "insert":
            position = draw(st.integers(0, len(joined)))
            piece = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=4)))
            joined = joined[:position] + piece + joined[position:]
        elif operation == "delete" and joined:
            start = draw(st.integers(0, len(joined) - 1))
            joined = joined[:start] + joined[start + draw(st.integers(1, 6)) :]
        elif operation == "duplicate_line" and lines:
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(0, len(lines))), lines[index])
            joined = "\n".join(lines)
        elif operation == "swap_lines" and len(lines) > 1:
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            joined = "\n".join(lines)
        elif operation == "cut" and joined:
            joined = joined[: draw(st.integers(0, len(joined)))]
        lines = joined.split("\n")
    return "\n".join(lines)


@st.composite
def encoded(draw: st.DrawFn, text: str) -> bytes:
    """UTF-8 bytes, sometimes with a byte-order mark, another encoding or invalid bytes."""
    choice = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "bom", "utf-16", "latin-1", "garbage"]))
    if choice == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    if choice == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    if choice == "latin-1":
        return text.encode("latin-1", "replace")
    raw = text.encode("utf-8", "surrogatepass")
    if choice == "garbage":
        position = draw(st.integers(0, len(raw)))
        raw = (
            raw[:position]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]))
            + raw[position:]
        )
    return raw


@st.composite
def hostile_yaml(draw: st.DrawFn, base: Any) -> str | bytes:
    """A file that started as ``base``: mutated data, mutated text, or both, perhaps mis-encoded."""
    kind = draw(
        st.sampled_from(["tweak", "tweak", "tweak", "data", "data", "text", "both", "bytes", "random"])
    )
    if kind == "random":
        return draw(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
    if kind == "tweak":
        return dump_yaml(draw(tweaked(base)))
    text = draw(yaml_text(base)) if kind in ("data", "both") else dump_yaml(base)
    if kind in ("text", "both"):
        text = draw(text_mutated(text))
    if kind == "bytes":
        return draw(encoded(draw(text_mutated(text))))
    return text


# ---------------------------------------------------------------------------- CEL


_ATOMS = [
    "true",
    "false",
    "null",
    "0",
    "1",
    "-1",
    "1.5",
    "1u",
    "9223372036854775807",
    "'s'",
    '"x"',
    "b'x'",
    "x",
    "now",
    "version",
    "version.stage",
    "version.canary.started_at",
    "version.deployments",
    "deployment.replicas.min",
    "model.id",
    "portfolio.rates.gpu_hour",
    "portfolio.roster",
    "roster",
    "teams",
    "measured",
    "history",
    "change",
    "old",
    "signoff.by",
    "exception.id",
    "endpoint",
    "params.max_days",
    "variables.age",
    "variables.limit",
    "duration('1h')",
    "duration('99999999999h')",
    "timestamp('2025-01-01T00:00:00Z')",
    "days(1)",
    "days(1e300)",
    "[]",
    "{}",
    "[1, 2, 3]",
    "['a', 'b']",
    "{'a': 1}",
    "1 / 0",
    "'\\u00e9'",
]
_BINARY = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in"]
_MACROS = ["all", "exists", "exists_one", "map", "filter"]
_FUNCTIONS = [
    "size",
    "string",
    "int",
    "double",
    "duration",
    "timestamp",
    "days",
    "to_days",
    "fmt",
    "has",
    "type",
]
_FIELDS = ["stage", "id", "min", "size()", "startsWith('a')", "matches('(a+)+$')", "contains('x')"]


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(_BINARY), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["!", "-"]), children).map(lambda t: f"{t[0]}{t[1]}"),
        st.tuples(children, st.sampled_from(_MACROS), children).map(lambda t: f"{t[0]}.{t[1]}(x, {t[2]})"),
        st.tuples(st.sampled_from(_FUNCTIONS), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(children, st.sampled_from(_FIELDS)).map(lambda t: f"{t[0]}.{t[1]}"),
        st.lists(children, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
    )


CEL = st.recursive(
    st.one_of(st.sampled_from(_ATOMS), st.text(max_size=6)),
    _extend,
    max_leaves=10,
)


def _expression_slots(doc: Any) -> list[tuple[Any, Any]]:
    keys = ("expression", "match", "messageExpression")
    return [(container, key) for container, key in _slots(doc) if key in keys]


@st.composite
def policy_text(draw: st.DrawFn) -> str | bytes:
    """A policy file: generated CEL in its expressions, mutated structure, sometimes broken text."""
    doc = copy.deepcopy(POLICY)
    for container, key in _expression_slots(doc):
        if draw(st.integers(0, 2)) == 0:
            container[key] = draw(CEL)
    doc["spec"]["scope"] = draw(
        st.sampled_from(
            ["version", "version", "deployment", "signoff", "portfolio", "exception", "endpoint", "model"]
        )
    )
    if draw(st.booleans()):
        doc = draw(mutated(doc, max_mutations=2))
    text = dump_yaml(doc)
    if draw(st.integers(0, 4)) == 0:
        return draw(st.one_of(text_mutated(text), text_mutated(text).flatmap(encoded)))
    return text


@st.composite
def exceptions_text(draw: st.DrawFn) -> str | bytes:
    doc = copy.deepcopy(EXCEPTIONS)
    if draw(st.booleans()):
        doc["exceptions"][1]["match"] = draw(CEL)
    if draw(st.booleans()):
        doc["exceptions"][0]["target"] = draw(st.sampled_from(TRICKY_STRINGS))
    if draw(st.booleans()):
        doc["exceptions"][0]["expires_at"] = draw(st.sampled_from(TRICKY_STRINGS))
    return draw(hostile_yaml(doc))


# ---------------------------------------------------------------------------- residency


def _json_line(record: Any) -> str:
    return json.dumps(record, allow_nan=True, ensure_ascii=False, default=str)


@st.composite
def residency_file(draw: st.DrawFn) -> tuple[str, str | bytes]:
    """(file name, content) of a native residency file under residency/."""
    records = [copy.deepcopy(RECORD) for _ in range(draw(st.integers(1, 4)))]
    for index, record in enumerate(records):
        record["window_start"] = f"2025-06-{index + 1:02d}T00:00:00Z"
        record["window_end"] = f"2025-06-{index + 2:02d}T00:00:00Z"
    change = draw(st.sampled_from(["none", "tweak", "tweak", "mutate"]))
    if change == "tweak":
        records = [draw(tweaked(record, max_changes=2)) for record in records]
    elif change == "mutate":
        records = [draw(mutated(record, max_mutations=2)) for record in records]
    suffix = draw(st.sampled_from([".jsonl", ".jsonl", ".csv"]))
    if suffix == ".jsonl":
        text = "\n".join(_json_line(record) for record in records) + "\n"
    else:
        buffer = io.StringIO()
        columns = [
            "deployment_id",
            "window_start",
            "window_end",
            "gpu_hours",
            "cost_total",
            "currency",
            "cost_basis",
        ]
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for record in records:
            cost = record.get("cost") if isinstance(record.get("cost"), dict) else {}
            row = [record.get("deployment_id"), record.get("window_start"), record.get("window_end")]
            row += [record.get("gpu_hours"), cost.get("total"), cost.get("currency"), cost.get("basis")]
            writer.writerow(["" if cell is None else str(cell) for cell in row])
        text = buffer.getvalue()
    kind = draw(st.sampled_from(["plain", "plain", "text", "bytes"]))
    content: str | bytes = text
    if kind == "text":
        content = draw(text_mutated(text))
    elif kind == "bytes":
        content = draw(encoded(draw(text_mutated(text))))
    return f"residency/2025-06{suffix}", content
