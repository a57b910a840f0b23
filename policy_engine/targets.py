"""Targets and their CEL data: the manifest turned into plain values, plus derived fields.

Each target is converted once; every policy of its scope then reads the same data. Optional
blocks are materialised as ``{}``/``[]`` so both CEL runtimes agree on ``has()``.
"""

from __future__ import annotations

import types
import typing
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple

from pydantic import BaseModel

from policy_engine.filefacts import DeploymentSummary, Material, VersionMaterial, material
from policy_engine.loading import ModelEntry, Portfolio
from policy_engine.models.portfolio import PortfolioFile
from policy_engine.yamlsource import Path as YamlPath
from policy_engine.yamlsource import SourceMap

SERVING_STAGES = ("canary", "production", "deprecated")
Materials = Callable[[ModelEntry], Material]  # a model file's material (``filefacts``)
MODEL_FILE_SCOPES = ("model", "version", "deployment", "signoff")  # one model file's own targets


@dataclass(frozen=True, slots=True)
class Target:
    id: str
    scope: str
    data: dict[str, Any]
    source: SourceMap | None
    path: YamlPath
    model: str | None = None
    version: str | None = None
    deployment: str | None = None
    # (line, column) of ``path``. A model file's targets are given theirs when made, its
    # positions at hand then (findings come scope by scope and would decode every file again);
    # an endpoint is given its first deployment's when known (``ModelEntry.traffic_positions``);
    # the other targets that span files are located only when a finding needs it.
    position: tuple[int, int] | None = None


@dataclass(slots=True)
class TargetSet:
    shared: dict[str, Any]
    by_scope: dict[str, list[Target]] = field(default_factory=dict)
    # Model files whose targets (model, version, deployment, sign-off) are made only when
    # asked for, by ``made_from``: a large portfolio's are made by the processes that
    # evaluate them (see ``build_targets(defer=True)``).
    deferred: list[ModelEntry] = field(default_factory=list)
    maker: ModelTargets | None = None

    def add(self, target: Target) -> None:
        self.by_scope.setdefault(target.scope, []).append(target)

    def made_from(self, entries: list[ModelEntry]) -> list[Target]:
        """The targets of ``entries`` (some of ``deferred``)."""
        if not entries:
            return []
        assert self.maker is not None, "deferred model files without a maker"
        made: list[Target] = []
        for entry in entries:
            self.maker.add_model(made.append, entry)
        return made

    def all(self) -> list[Target]:
        return [t for targets in self.by_scope.values() for t in targets] + self.made_from(self.deferred)


# ---------------------------------------------------------------------------- normalisation


def _declared(model: type[BaseModel], name: str) -> Any:
    """A field's declared type without its ``| None``."""
    annotation: Any = model.model_fields[name].annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return options[0] if options else None
    return annotation


@cache
def _field_kinds(model: type[BaseModel]) -> dict[str, tuple[str, str]]:
    """Per field: (output key, what None becomes: 'block', 'list' or 'drop')."""
    kinds = {}
    for name, info in model.model_fields.items():
        first = _declared(model, name)
        origin = typing.get_origin(first)
        if (isinstance(first, type) and issubclass(first, BaseModel)) or origin is dict:
            kind = "block"
        elif origin is list:
            kind = "list"
        else:
            kind = "drop"
        kinds[name] = (info.alias or name, kind)
    return kinds


def plain(value: Any) -> Any:
    """A model as JSON-like data: absent scalars dropped, absent blocks as {} and lists as []."""
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        for name, (key, kind) in _field_kinds(type(value)).items():
            item = getattr(value, name)
            if item is None:
                if kind == "block":
                    out[key] = {}
                elif kind == "list":
                    out[key] = []
                continue
            out[key] = plain(item)
        return out
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@cache
def _absent_defaults(
    model: type[BaseModel],
) -> tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any, str], ...]]:
    """Per model: (key, empty value) for blocks and lists that may be absent, and
    (key, model, 'one' | 'list' | 'dict') for fields holding nested models."""
    defaults: list[tuple[str, Any]] = []
    nested: list[tuple[str, Any, str]] = []
    for name, (key, kind) in _field_kinds(model).items():
        if kind == "block":
            defaults.append((key, dict))
        elif kind == "list":
            defaults.append((key, list))
        first = _declared(model, name)
        args = typing.get_args(first)
        if isinstance(first, type) and issubclass(first, BaseModel):
            nested.append((key, first, "one"))
        elif typing.get_origin(first) in (list, dict) and args:
            inner = args[-1]
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                nested.append((key, inner, "list" if typing.get_origin(first) is list else "dict"))
    return tuple(defaults), tuple(nested)


def plain_model(value: BaseModel) -> dict[str, Any]:
    """``plain`` for models whose free-form values are never null (model files): pydantic's
    own dump, then absent blocks and lists filled in (about twice as fast as walking)."""
    out: dict[str, Any] = value.model_dump(by_alias=True, exclude_none=True)
    _fill(out, type(value))
    return out


def _fill(data: dict[str, Any], model: type[BaseModel]) -> None:
    defaults, nested = _absent_defaults(model)
    for key, empty in defaults:
        if key not in data:
            data[key] = empty()
    for key, inner, shape in nested:
        item = data.get(key)
        if not item:
            continue
        if shape == "one":
            _fill(item, inner)
        elif shape == "list":
            for element in item:
                _fill(element, inner)
        else:
            for element in item.values():
                _fill(element, inner)


# ---------------------------------------------------------------------------- derived fields


def deployment_floor(deployment: DeploymentSummary, head: PortfolioFile) -> float | None:
    """Monthly cost of the warm floor: replicas.min × (GPUs × rate + overhead) × hours."""
    if not deployment.warm:
        return 0.0
    rate = head.rates.gpu_hour.get(deployment.accelerator_type)
    if rate is None:
        return None
    hours = head.portfolio.hours_per_month
    per_replica = deployment.accelerator_count * rate + head.rates.overhead_per_replica_hour
    return round(deployment.replicas_min * per_replica * hours, 2)


def _sum(values: list[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return round(float(sum(v for v in values if v is not None)), 2)  # a float even when empty


class _Known(NamedTuple):
    """What targets of other versions need to know about one version."""

    stage: str
    floor: float | None  # the version's warm floor, when every accelerator is priced
    deployment_floors: list[float | None]


def build_targets(
    portfolio: Portfolio,
    *,
    consume: bool = False,
    defer: bool = False,
    materials: Materials | None = None,
) -> TargetSet:
    """Every target of every scope, with its CEL data and source location.

    ``consume``: the caller will not read ``portfolio.models`` again; they are taken out of
    the list as their targets are made, so each file's validated model is freed once its
    targets exist (on a large portfolio this roughly halves the peak memory of a run).
    ``defer``: the model files' own targets are left to ``TargetSet.made_from`` (the portfolio,
    endpoints and exceptions, which span files, are made here). ``materials``: each file's
    material (default: computed; ``factcache`` remembers it by the file's content).
    """
    head = portfolio.portfolio
    shared = {
        "portfolio": {
            **plain(head.portfolio),
            "teams": plain(head.teams),
            "roster": plain(head.roster),
            "authority": plain(head.authority),
            "rates": plain(head.rates),
            "model_count": len(portfolio.models),
        },
        "roster": {p.login: plain(p) for p in head.roster},
        "teams": {t.id: plain(t) for t in head.teams},
    }
    targets = TargetSet(shared)
    targets.add(Target("portfolio", "portfolio", {}, portfolio.source, ("portfolio",)))

    versions_by_key: dict[tuple[str, str], _Known] = {}
    for entry in portfolio.models:
        summary = entry.summary
        for version in summary.versions:
            floors = [deployment_floor(d, head) for d in version.deployments]
            versions_by_key[(summary.model_id, version.version)] = _Known(version.stage, _sum(floors), floors)
    maker = ModelTargets(head, versions_by_key, materials or computed_material)
    endpoints = _endpoints(portfolio.models)

    if defer:
        targets.deferred, targets.maker = list(portfolio.models), maker
        if consume:
            portfolio.models.clear()
    else:
        entries = deque(portfolio.models)
        if consume:
            portfolio.models.clear()
        while entries:
            entry = entries.popleft()
            maker.add_model(targets.add, entry)
    for (name, region), data in sorted(endpoints.items()):
        source, path, position = data.pop("_where")
        targets.add(
            Target(
                f"endpoint:{name}@{region}", "endpoint", {"endpoint": data}, source, path, position=position
            )
        )

    exceptions_source = portfolio.exceptions_source
    for index, exception in enumerate(portfolio.exceptions.exceptions):
        targets.add(
            Target(
                f"exception:{exception.id}",
                "exception",
                {"exception": plain(exception)},
                exceptions_source,
                ("exceptions", index),
            )
        )
    return targets


def _endpoints(entries: list[ModelEntry]) -> dict[tuple[str, str], dict[str, Any]]:
    """Serving deployments grouped by (endpoint, region), with their traffic summed."""
    endpoints: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        model, source, traffic = entry.summary, entry.source, entry.traffic_positions
        for vi, version in enumerate(model.versions):
            if version.stage not in SERVING_STAGES:
                continue
            for di, deployment in enumerate(version.deployments):
                key = (deployment.endpoint, deployment.region)
                where: YamlPath = ("versions", vi, "deployments", di, "traffic_percent")
                group = endpoints.setdefault(
                    key,
                    {
                        "name": deployment.endpoint,
                        "region": deployment.region,
                        "traffic_sum": 0.0,
                        "deployments": [],
                        "_where": (source, where, traffic[vi][di] if traffic else None),
                    },
                )
                group["traffic_sum"] = round(group["traffic_sum"] + deployment.traffic_percent, 6)
                group["deployments"].append(
                    {
                        "id": deployment.id,
                        "version": f"{model.model_id}@{version.version}",
                        "stage": version.stage,
                        "traffic_percent": deployment.traffic_percent,
                    }
                )
    return endpoints


@dataclass(frozen=True, slots=True)
class ModelTargets:
    """Makes one model file's targets from its material (``filefacts``); what they need from
    the rest of the portfolio is gathered first (each version's stage and warm floor)."""

    head: PortfolioFile
    versions_by_key: dict[tuple[str, str], _Known]
    materials: Materials

    def add_model(self, add: Callable[[Target], None], entry: ModelEntry) -> None:
        versions_by_key = self.versions_by_key
        source = entry.source
        found = self.materials(entry)
        model_data = found.data
        model_id: str = model_data["id"]
        versions_data = model_data.pop("versions")
        known_versions = [versions_by_key[(model_id, v["version"])] for v in versions_data]
        model_data["floor_monthly"] = _sum([known.floor for known in known_versions])
        model_data["version_count"] = len(versions_data)
        if model_data["floor_monthly"] is None:
            del model_data["floor_monthly"]
        add(
            Target(
                model_id,
                "model",
                {"model": model_data},
                source,
                ("id",),
                model=model_id,
                position=found.position,
            )
        )

        for vi, (data, own, known) in enumerate(
            zip(versions_data, found.versions, known_versions, strict=True)
        ):
            version_id: str = data["version"]
            vid = f"{model_id}@{version_id}"
            _derive_version(data, own, model_id, known, versions_by_key, self.head.rates.gpu_hour)
            vpath: YamlPath = ("versions", vi)
            add(
                Target(
                    vid,
                    "version",
                    {"model": model_data, "version": data},
                    source,
                    vpath,
                    position=own.position,
                    model=model_id,
                    version=version_id,
                )
            )
            for di, ddata in enumerate(data["deployments"]):
                dfloor = known.deployment_floors[di]
                if dfloor is not None:
                    ddata["floor_monthly"] = dfloor
                ddata["warm"] = own.deployments_warm[di]
                add(
                    Target(
                        f"{vid}/{ddata['id']}",
                        "deployment",
                        {"model": model_data, "version": data, "deployment": ddata},
                        source,
                        (*vpath, "deployments", di),
                        position=own.deployment_positions[di],
                        model=model_id,
                        version=version_id,
                        deployment=ddata["id"],
                    )
                )
            for si, signoff in enumerate(data["signoffs"]):
                add(
                    Target(
                        f"{vid}/signoff:{signoff['role']}:{signoff['by']}",
                        "signoff",
                        {"model": model_data, "version": data, "signoff": signoff},
                        source,
                        (*vpath, "signoffs", si),
                        position=own.signoff_positions[si],
                        model=model_id,
                        version=version_id,
                    )
                )


def computed_material(entry: ModelEntry) -> Material:
    return material(entry.model, entry.source, plain_model(entry.model))


def _derive_version(
    data: dict[str, Any],
    own: VersionMaterial,
    model_id: str,
    known: _Known,
    versions_by_key: dict[tuple[str, str], _Known],
    rates: dict[str, float],
) -> None:
    """Fields computed per version (never authored): ``id``, ``model_id``, ``digest``,
    ``requested_stage`` (defaults to ``stage``), ``floor_monthly`` (when every accelerator is
    priced), ``warm_replicas``, ``warm_gpus``, ``max_replicas_per_region``,
    ``unpriced_accelerators``, ``incumbent_stage`` / ``incumbent_floor_monthly`` (canary and
    shadow), ``fallback_primary_stage`` (fallback) and ``signoff_roles``."""
    data["id"] = f"{model_id}@{data['version']}"
    data["model_id"] = model_id
    data["digest"] = own.digest
    if "requested_stage" not in data:
        data["requested_stage"] = data["stage"]
    if known.floor is not None:
        data["floor_monthly"] = known.floor
    data["warm_replicas"] = own.warm_replicas
    data["warm_gpus"] = own.warm_gpus
    data["max_replicas_per_region"] = own.max_replicas_per_region
    # Accelerator types of warm deployments with no rates.gpu_hour entry; while any is listed,
    # the version has no floor_monthly.
    data["unpriced_accelerators"] = [t for t in own.warm_accelerators if t not in rates]
    # The version a canary or shadow is tested against: its stage when it is in the portfolio,
    # and its warm floor when every accelerator it uses is priced.
    if own.incumbent is not None:
        found = versions_by_key.get((model_id, own.incumbent))
        if found is not None:
            data["incumbent_stage"] = found.stage
            if found.floor is not None:
                data["incumbent_floor_monthly"] = found.floor
    if own.fallback_for is not None:
        primary = versions_by_key.get(own.fallback_for)
        data["fallback_primary_stage"] = primary.stage if primary else ""
    data["signoff_roles"] = own.signoff_roles
