"""Policy files: discovery, parameters, and compilation of every expression before evaluation."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from policy_engine.cel import Backend, CelCompileError, Checker, portability_hint
from policy_engine.errors import InputError, InputErrors, json_path
from policy_engine.inline import (
    InlineError,
    bind_variables,
    bound,
    inline,
    referenced_params,
    uses_reserved_names,
)
from policy_engine.loading import YAML_SUFFIXES, load_document
from policy_engine.models.config import ConfigFile
from policy_engine.models.policy import PolicyFile
from policy_engine.models.report import Override
from policy_engine.sources import DirectorySource, FileSource
from policy_engine.yamlsource import Path as YamlPath
from policy_engine.yamlsource import SourceMap


def builtin_pack_dir() -> Path:
    """The built-in pack: inside the wheel, or the repository's ``policies/`` when developing."""
    packaged = Path(__file__).parent / "_builtin_policies"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "policies"


@dataclass(frozen=True, slots=True)
class PolicySource:
    """A directory of policy files and how to show their paths."""

    files: FileSource
    directory: str
    prefix: str
    builtin: bool = False


@dataclass(slots=True)
class LoadedPolicy:
    """A policy file plus its effective settings after parameters and overrides."""

    doc: PolicyFile
    source: SourceMap
    builtin: bool
    params: dict[str, Any] = field(default_factory=dict)
    severity: str = ""
    enforcement: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.severity = self.severity or self.doc.metadata.severity
        # Defaults until apply_params runs, so policies compile even when the portfolio did
        # not load (its errors are reported; the policies' must not be spurious).
        if not self.params:
            self.params = {name: _as_param(spec.default) for name, spec in self.doc.spec.params.items()}
        declared = self.doc.spec.enforcement
        if declared is not None and not self.enforcement:
            levels = {
                "pre-commit": declared.pre_commit,
                "pull-request": declared.pull_request,
                "audit": declared.audit,
            }
            self.enforcement = {context: level for context, level in levels.items() if level}

    @property
    def id(self) -> str:
        return self.doc.metadata.id


def load_policies(sources: list[PolicySource]) -> list[LoadedPolicy]:
    """Every policy file of every source, validated against the policy schema."""
    errors: list[InputError] = []
    policies: list[LoadedPolicy] = []
    seen: dict[str, str] = {}
    for source in sources:
        for path in source.files.list(source.directory, YAML_SUFFIXES):
            if _is_test_material(path.removeprefix(source.directory)):
                continue
            shown = source.prefix + path.removeprefix(source.directory).lstrip("/")
            if source.builtin:
                shown = "builtin:" + path.removeprefix(source.directory).lstrip("/")
            loaded = load_document(source.files, path, shown, PolicyFile, errors, track_values=True)
            if loaded is None:
                continue
            doc, smap = loaded
            if doc.metadata.id in seen:
                errors.append(
                    smap.error(
                        ("metadata", "id"),
                        f"policy id {doc.metadata.id!r} is also defined in {seen[doc.metadata.id]}",
                        "unique policy ids",
                    )
                )
                continue
            seen[doc.metadata.id] = smap.file
            policies.append(LoadedPolicy(doc, smap, source.builtin))
    if errors:
        raise InputErrors(errors)
    return policies


def _is_test_material(path: str) -> bool:
    """Policy test suites and their fixture portfolios live beside policies but are not policies."""
    parts = path.strip("/").split("/")
    return any(part in ("tests", "fixtures") for part in parts[:-1]) or parts[-1].endswith(
        (".test.yaml", ".test.yml")
    )


def builtin_source() -> PolicySource:
    return PolicySource(DirectorySource(builtin_pack_dir()), "", "", builtin=True)


def apply_params(
    policies: list[LoadedPolicy], policy_params: dict[str, dict[str, Any]], source: SourceMap
) -> list[Override]:
    """Effective parameters: policy default < ``policy_params``. Returns what differs."""
    errors: list[InputError] = []
    overrides: list[Override] = []
    by_id = {p.id: p for p in policies}
    for policy in policies:
        policy.params = {name: _as_param(spec.default) for name, spec in policy.doc.spec.params.items()}
    for policy_id, values in policy_params.items():
        found = by_id.get(policy_id)
        if found is None:
            guess = difflib.get_close_matches(policy_id, list(by_id), n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            errors.append(
                source.error(
                    ("policy_params", policy_id),
                    f"no loaded policy has id {policy_id!r}{hint}",
                    "the id of a loaded policy",
                )
            )
            continue
        policy = found
        for name, value in values.items():
            path: YamlPath = ("policy_params", policy_id, name)
            if name not in policy.params:
                known = sorted(policy.params)
                guess = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {guess[0]!r}?" if guess else ""
                errors.append(
                    source.error(
                        path,
                        f"{policy_id} has no parameter {name!r}{hint}",
                        "one of " + (", ".join(known) or "(none)"),
                    )
                )
                continue
            default = policy.params[name]
            value = _as_param(value)
            if _kind(value) != _kind(default):
                errors.append(
                    source.error(
                        path,
                        f"parameter {name!r} of {policy_id} is a {_kind(value)}",
                        f"a {_kind(default)} like the default {default!r}",
                    )
                )
                continue
            if value != default:
                line, _ = source.locate(path)
                overrides.append(
                    Override(
                        policy_id=policy_id,
                        setting=f"params.{name}",
                        default=default,
                        value=value,
                        source=f"{source.file}:{line}",
                    )
                )
            policy.params[name] = value
    if errors:
        raise InputErrors(errors)
    return overrides


def apply_config(
    policies: list[LoadedPolicy], config: ConfigFile, source: SourceMap | None, *, disallow: bool
) -> tuple[list[LoadedPolicy], list[Override]]:
    """``.policy-engine.yaml``: disable policies, change severity, enforcement or parameters.

    Each setting that differs from the pack is an ``Override`` in the report; with ``disallow``
    every override is an input error instead (central teams forbidding local weakening).
    """
    if source is None:
        return policies, []
    errors: list[InputError] = []
    overrides: list[Override] = []
    by_id = {p.id: p for p in policies}

    def unknown(path: YamlPath, policy_id: str) -> None:
        guess = difflib.get_close_matches(policy_id, list(by_id), n=1)
        hint = f"; did you mean {guess[0]!r}?" if guess else ""
        errors.append(
            source.error(path, f"no loaded policy has id {policy_id!r}{hint}", "the id of a loaded policy")
        )

    def record(policy_id: str, setting: str, default: Any, value: Any, path: YamlPath) -> None:
        line, _ = source.locate(path)
        if disallow:
            errors.append(
                source.error(
                    path,
                    f"override of {policy_id} {setting} is not allowed (--disallow-overrides)",
                    "no local overrides",
                )
            )
        overrides.append(
            Override(
                policy_id=policy_id,
                setting=setting,
                default=default,
                value=value,
                source=f"{source.file}:{line}",
            )
        )

    disabled = set()
    for index, policy_id in enumerate(config.policies.disable):
        if policy_id not in by_id:
            unknown(("policies", "disable", index), policy_id)
            continue
        disabled.add(policy_id)
        record(policy_id, "enabled", True, False, ("policies", "disable", index))
    for policy_id, override in config.policies.overrides.items():
        base: YamlPath = ("policies", "overrides", policy_id)
        found = by_id.get(policy_id)
        if found is None:
            unknown(base, policy_id)
            continue
        policy = found
        if override.severity is not None and override.severity != policy.severity:
            record(policy_id, "severity", policy.severity, override.severity, (*base, "severity"))
            policy.severity = override.severity
        if override.enforcement is not None:
            levels = {
                "pre-commit": override.enforcement.pre_commit,
                "pull-request": override.enforcement.pull_request,
                "audit": override.enforcement.audit,
            }
            for context, level in levels.items():
                if level is not None and level != policy.enforcement.get(context):
                    record(
                        policy_id,
                        f"enforcement.{context}",
                        policy.enforcement.get(context, "default"),
                        level,
                        (*base, "enforcement", context),
                    )
                    policy.enforcement[context] = level
        for name, value in override.params.items():
            path: YamlPath = (*base, "params", name)
            if name not in policy.params:
                errors.append(
                    source.error(
                        path,
                        f"{policy_id} has no parameter {name!r}",
                        "one of " + (", ".join(sorted(policy.params)) or "(none)"),
                    )
                )
                continue
            value = _as_param(value)
            if _kind(value) != _kind(policy.params[name]):
                errors.append(
                    source.error(
                        path,
                        f"parameter {name!r} of {policy_id} is a {_kind(value)}",
                        f"a {_kind(policy.params[name])}",
                    )
                )
                continue
            if value != policy.params[name]:
                record(policy_id, f"params.{name}", policy.params[name], value, path)
                policy.params[name] = value
    if errors:
        raise InputErrors(errors)
    return [p for p in policies if p.id not in disabled], overrides


def _as_param(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "null"


# ---------------------------------------------------------------------------- compilation


@dataclass(frozen=True, slots=True)
class CompiledVariable:
    name: str
    program: Any
    source: str = "null"  # the expression with parameters and variables inlined


@dataclass(frozen=True, slots=True)
class CompiledValidation:
    key: str
    index: int
    program: Any
    message: str
    message_program: Any | None
    remediation: str | None
    # The expression with parameters and variables inlined (compiled so on cel-python; on
    # cel-expr-python the program binds the variables instead, see ``CompiledPolicy.bound``).
    source: str = "true"
    message_source: str | None = None  # the messageExpression, likewise


@dataclass(frozen=True, slots=True)
class BoundTexts:
    """A policy's expressions with parameters inlined and each variable read from a lazy
    binding (``pe_v_NAME``, see ``inline.bind_variables``) rather than inlined."""

    variables: list[tuple[str, str]]  # (name, expression), in declaration order
    match: str | None
    validations: list[tuple[str, str | None]]  # (expression, messageExpression)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: LoadedPolicy
    match: Any | None
    variables: list[CompiledVariable]
    validations: list[CompiledValidation]
    params_used: list[str]
    match_source: str | None = None  # as compiled, like CompiledValidation.source
    bound: BoundTexts | None = None  # when the backend binds variables (cel-expr-python)

    @property
    def id(self) -> str:
        return self.policy.id


def compile_policies(policies: list[LoadedPolicy], backend: Backend) -> list[CompiledPolicy]:
    """Compile every expression of every policy; report all compile errors at once."""
    # The built-in pack is checked by its own tests (tests/pack); only authored text is checked
    # here, which saves a third of the compiling a pre-commit run does.
    checker = Checker.create() if any(not p.builtin for p in policies) else None
    errors: list[InputError] = []
    compiled: list[CompiledPolicy] = []
    for policy in policies:
        binds = backend.name == "cpp" and not any(
            uses_reserved_names(t) for t in _expressions(policy.doc.spec)
        )
        before = len(errors)
        checks = None if policy.builtin else checker
        try:
            result = _compile_one(policy, backend, checks, errors, binds=binds)
        except _TooDeepBound:  # nested bindings past the runtime's limit: inline instead
            del errors[before:]
            result = _compile_one(policy, backend, checks, errors, binds=False)
        if result is not None:
            compiled.append(result)
    if errors:
        raise InputErrors(errors)
    return compiled


class _TooDeepBound(Exception):
    """A policy's text compiles inlined but not with its variables bound."""


def _compile_one(
    policy: LoadedPolicy, backend: Backend, checker: Checker | None, errors: list[InputError], *, binds: bool
) -> CompiledPolicy | None:
    spec = policy.doc.spec
    before = len(errors)
    expanded: dict[str, str] = {}
    programs: list[CompiledVariable] = []
    used: list[str] = []
    compiled_text: dict[YamlPath, str] = {}
    # ``binds``: variables are bound (each evaluated once where first used; cel-expr-python)
    # rather than inlined (cel-python has no cel.bind). The results are the same.
    bound_variables: list[tuple[str, str]] = []
    bound_text: dict[YamlPath, str] = {}

    def build(text: str, path: YamlPath, want: Literal["bool", "string", "any"] = "bool") -> Any:
        for name in referenced_params(text):
            if name not in used:
                used.append(name)
        if checker is not None:
            try:
                checker.check(text, want)
            except CelCompileError as exc:
                errors.append(_located(policy.source, path, exc, text))
                return None
        try:
            source = inline(text, policy.params, expanded)
            compiled = source
            if binds:
                bound_text[path] = bound(text, policy.params, [name for name, _ in bound_variables])
                compiled = bind_variables(bound_text[path], bound_variables)
        except InlineError as exc:
            errors.append(policy.source.error(path, str(exc), "params.NAME or variables.NAME"))
            return None
        try:
            program = backend.compile(compiled)
        except CelCompileError as exc:
            if binds and _compiles(backend, source):
                raise _TooDeepBound from None
            errors.append(_located(policy.source, path, exc, text))
            return None
        compiled_text[path] = source
        return program

    for index, variable in enumerate(spec.variables):
        path: YamlPath = ("spec", "variables", index, "expression")
        program = build(variable.expression, path, "any")
        if program is not None:
            programs.append(CompiledVariable(variable.name, program, compiled_text[path]))
            if binds:
                bound_variables.append((variable.name, bound_text[path]))
        try:
            expanded[variable.name] = inline(variable.expression, policy.params, expanded)
        except InlineError:
            expanded[variable.name] = "null"
    match = build(spec.match, ("spec", "match")) if spec.match else None
    validations: list[CompiledValidation] = []
    for index, validation in enumerate(spec.validations):
        base: YamlPath = ("spec", "validations", index)
        program = build(validation.expression, (*base, "expression"))
        message_program = (
            build(validation.messageExpression, (*base, "messageExpression"), "string")
            if validation.messageExpression
            else None
        )
        validations.append(
            CompiledValidation(
                key=validation.name or str(index),
                index=index,
                program=program,
                message=validation.message.strip(),
                message_program=message_program,
                remediation=validation.remediation.strip() if validation.remediation else None,
                source=compiled_text.get((*base, "expression"), "true"),
                message_source=compiled_text.get((*base, "messageExpression")),
            )
        )
    if len(errors) > before:
        return None
    texts = None
    if binds:
        texts = BoundTexts(
            bound_variables,
            bound_text.get(("spec", "match")),
            [
                (
                    bound_text[("spec", "validations", index, "expression")],
                    bound_text.get(("spec", "validations", index, "messageExpression")),
                )
                for index in range(len(spec.validations))
            ],
        )
    return CompiledPolicy(
        policy, match, programs, validations, used, compiled_text.get(("spec", "match")), texts
    )


def _compiles(backend: Backend, source: str) -> bool:
    try:
        backend.compile(source)
    except CelCompileError:
        return False
    return True


def _expressions(spec: Any) -> list[str]:
    """Every CEL text of a policy."""
    texts = [v.expression for v in spec.variables] + ([spec.match] if spec.match else [])
    for validation in spec.validations:
        texts.append(validation.expression)
        if validation.messageExpression:
            texts.append(validation.messageExpression)
    return texts


def _located(source: SourceMap, path: YamlPath, exc: CelCompileError, text: str) -> InputError:
    """Place a CEL error inside the YAML scalar that holds the expression ``text``."""
    line, column = source.value_position(path, text, exc.line, exc.column)
    expected = portability_hint(text) or ("a valid CEL expression" if "expected" not in exc.message else "")
    return InputError(source.file, line, column, f"CEL: {exc.message}", json_path(path), expected)
