"""From a portfolio root to one validated, located document (``Portfolio``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from policy_engine.errors import InputError, InputErrors
from policy_engine.factcache import known_summary, known_traffic_positions, remember_summary
from policy_engine.filefacts import FileSummary, Position, summarize
from policy_engine.models.config import ConfigFile
from policy_engine.models.portfolio import ExceptionsFile, ModelFile, PortfolioFile
from policy_engine.parallel import parse_all
from policy_engine.sources import FileSource
from policy_engine.validation import validate
from policy_engine.yamlsource import SourceMap, Unread, YamlError, decode, parse

PORTFOLIO_FILE = "portfolio.yaml"
EXCEPTIONS_FILE = "exceptions.yaml"
CONFIG_FILE = ".policy-engine.yaml"
MODELS_DIR = "models"
YAML_SUFFIXES = (".yaml", ".yml")


class ModelEntry:
    """One model file: its source map, what the rest of the portfolio needs of it
    (``summary``), and its validated model.

    A file whose content an earlier run validated (its summary is in the cache, see
    ``factcache``) is not validated again unless its model is asked for: a run on unchanged
    files usually never asks (its targets come from cached material too).
    """

    __slots__ = ("_data", "_model", "_summary", "key", "source", "traffic_positions")

    def __init__(
        self,
        model: ModelFile | None,
        source: SourceMap,
        *,
        key: str = "",
        data: Any = None,
        summary: FileSummary | None = None,
        traffic_positions: list[list[Position]] | None = None,
    ) -> None:
        self.source = source
        # Where each deployment's traffic is, when known without decoding the file's positions.
        self.traffic_positions = traffic_positions
        # The content key the cached facts of this entry are filed under; empty when the model
        # is not exactly its file's content (a pull request's merge of head and base).
        self.key = key
        self._model = model
        self._data = data  # the parsed file (maybe ``Unread``), validated when ``model`` is None
        self._summary = summary

    @property
    def model(self) -> ModelFile:
        if self._model is None:
            data = self._data
            if isinstance(data, Unread):
                try:
                    data = data.value()
                except YamlError as exc:
                    raise InputErrors([exc.error]) from None
            document, problems = validate(ModelFile, data, self.source)
            if document is None:  # the cached summary said valid: a cache from other code
                raise InputErrors(problems)
            self._model, self._data = document, None
        return self._model

    @property
    def summary(self) -> FileSummary:
        if self._summary is None:
            self._summary = summarize(self.model)
        return self._summary


@dataclass(frozen=True, slots=True)
class Portfolio:
    """The merged portfolio: every part keeps the source map of the file it came from."""

    portfolio: PortfolioFile
    source: SourceMap
    models: list[ModelEntry]
    exceptions: ExceptionsFile
    exceptions_source: SourceMap | None
    config: ConfigFile = field(default_factory=ConfigFile)
    config_source: SourceMap | None = None


def read_yaml(
    files: FileSource, path: str, shown: str, *, track_values: bool = False
) -> tuple[Any, SourceMap] | None:
    """Parse one file; None when absent. Raises YamlError for unreadable content."""
    try:
        raw = files.read(path)
    except PermissionError as exc:
        raise YamlError(InputError(shown, 1, 1, str(exc), "", "a file inside the portfolio")) from None
    if raw is None:
        return None
    return parse(decode(raw, shown), shown, track_values=track_values)


def load_document(
    files: FileSource,
    path: str,
    shown: str,
    model: type[BaseModel],
    errors: list[InputError],
    *,
    track_values: bool = False,
) -> tuple[Any, SourceMap] | None:
    """Read, parse and validate one file, appending every problem to ``errors``."""
    try:
        parsed = read_yaml(files, path, shown, track_values=track_values)
    except YamlError as exc:
        errors.append(exc.error)
        return None
    if parsed is None:
        return None
    data, source = parsed
    if not isinstance(data, dict):
        errors.append(InputError(shown, 1, 1, "top level is not a mapping", "$", "a YAML mapping"))
        return None
    document, problems = validate(model, data, source)
    errors.extend(problems)
    return (document, source) if document is not None else None


def load_portfolio(files: FileSource, prefix: str = "") -> Portfolio:
    """Load ``portfolio.yaml``, ``models/**/*.yaml`` and ``exceptions.yaml``.

    Every input error of every file is collected before raising ``InputErrors``.
    """
    errors: list[InputError] = []
    head = load_document(files, PORTFOLIO_FILE, prefix + PORTFOLIO_FILE, PortfolioFile, errors)
    if head is None and not errors:
        errors.append(
            InputError(
                prefix + PORTFOLIO_FILE,
                1,
                1,
                "portfolio.yaml not found; is this a portfolio repository?",
                "",
                "portfolio.yaml at the portfolio root (see examples/acme-portfolio)",
            )
        )
    models = _load_models(files, prefix, errors)
    exceptions = load_document(files, EXCEPTIONS_FILE, prefix + EXCEPTIONS_FILE, ExceptionsFile, errors)
    config = load_document(files, CONFIG_FILE, prefix + CONFIG_FILE, ConfigFile, errors)
    errors.extend(_identity_errors(models, exceptions))
    if errors or head is None:
        raise InputErrors(errors)
    return Portfolio(
        portfolio=head[0],
        source=head[1],
        models=models,
        exceptions=exceptions[0] if exceptions else ExceptionsFile(),
        exceptions_source=exceptions[1] if exceptions else None,
        config=config[0] if config else ConfigFile(),
        config_source=config[1] if config else None,
    )


def _load_models(files: FileSource, prefix: str, errors: list[InputError]) -> list[ModelEntry]:
    """Every ``models/**/*.yaml``; many files are parsed on all cores (see ``parallel``)."""
    items: list[tuple[bytes, str]] = []
    for path in files.list(MODELS_DIR, YAML_SUFFIXES):
        shown = prefix + path
        try:
            raw = files.read(path)
        except PermissionError as exc:
            errors.append(InputError(shown, 1, 1, str(exc), "", "a file inside the portfolio"))
            continue
        if raw is not None:
            items.append((raw, shown))
    models: list[ModelEntry] = []
    for (_, shown), parsed in zip(items, parse_all(items), strict=True):
        if isinstance(parsed, InputError):
            errors.append(parsed)
            continue
        data, source = parsed
        summary = known_summary(source.content_key)
        if summary is not None:  # validated by an earlier run: validated again only if needed
            key = source.content_key
            traffic = known_traffic_positions(key, summary)
            models.append(
                ModelEntry(None, source, key=key, data=data, summary=summary, traffic_positions=traffic)
            )
            continue
        if isinstance(data, Unread):
            try:
                data = data.value()
            except YamlError as exc:
                errors.append(exc.error)
                continue
        if not isinstance(data, dict):
            errors.append(InputError(shown, 1, 1, "top level is not a mapping", "$", "a YAML mapping"))
            continue
        document, problems = validate(ModelFile, data, source)
        errors.extend(problems)
        if document is not None:
            entry = ModelEntry(document, source, key=source.content_key)
            remember_summary(entry.key, entry.summary)
            models.append(entry)
    return models


def _identity_errors(models: list[ModelEntry], exceptions: tuple[Any, SourceMap] | None) -> list[InputError]:
    """Ids that must be unique: models, versions within a model, deployments, exceptions."""
    errors: list[InputError] = []
    seen_models: dict[str, str] = {}
    seen_deployments: dict[str, str] = {}
    for entry in models:
        model, source = entry.summary, entry.source
        if model.model_id in seen_models:
            errors.append(
                source.error(
                    ("id",),
                    f"model id {model.model_id!r} is also defined in {seen_models[model.model_id]}",
                    "each model id in exactly one file",
                )
            )
        seen_models.setdefault(model.model_id, source.file)
        versions: set[str] = set()
        for vi, version in enumerate(model.versions):
            if version.version in versions:
                errors.append(
                    source.error(
                        ("versions", vi, "version"),
                        f"version {version.version!r} of {model.model_id} is listed twice",
                        "each version once",
                    )
                )
            versions.add(version.version)
            for di, deployment in enumerate(version.deployments):
                where = f"{model.model_id}@{version.version}"
                if deployment.id in seen_deployments:
                    errors.append(
                        source.error(
                            ("versions", vi, "deployments", di, "id"),
                            f"deployment id {deployment.id!r} is also used by "
                            f"{seen_deployments[deployment.id]}",
                            "globally unique deployment ids (they join measured residency)",
                        )
                    )
                seen_deployments.setdefault(deployment.id, where)
    if exceptions is not None:
        document, source = exceptions
        ids: set[str] = set()
        for index, exception in enumerate(document.exceptions):
            if exception.id in ids:
                errors.append(
                    source.error(
                        ("exceptions", index, "id"),
                        f"exception id {exception.id!r} is listed twice",
                        "unique ids",
                    )
                )
            ids.add(exception.id)
            if (exception.target is None) == (exception.match is None):
                errors.append(
                    source.error(
                        ("exceptions", index),
                        "an exception needs exactly one of 'target' or 'match'",
                        "target: <target id> or match: <CEL>",
                    )
                )
    return errors
