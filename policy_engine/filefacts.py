"""What one model file gives the rest of a run, computed once per file content.

Two parts, each a function of the validated file alone (never of another file):

- ``FileSummary``: what the portfolio needs of the file before any target is made (ids that
  must be unique, each version's stage, its deployments' endpoints and warm floors' inputs);
- ``Material``: what its targets are made of (its CEL data, version digests, the positions of
  its targets, and the per-version values that other files' data completes, see ``targets``).

Both are plain values, so they can be remembered by the file's content (``factcache``): a file
that has not changed since the last run needs neither validating again nor converting again.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from policy_engine.digest import version_digest
from policy_engine.models.portfolio import ModelFile, Version
from policy_engine.residency.join import joined_digest
from policy_engine.yamlsource import SourceMap


class DeploymentSummary(NamedTuple):
    id: str
    endpoint: str
    region: str
    traffic_percent: float
    warm: bool  # ``Deployment.warm``
    replicas_min: int
    accelerator_type: str
    accelerator_count: int


class VersionSummary(NamedTuple):
    version: str
    stage: str
    deployments: tuple[DeploymentSummary, ...]
    signoffs: int


class FileSummary(NamedTuple):
    model_id: str
    versions: tuple[VersionSummary, ...]
    joined: str  # ``residency.join.joined_digest``: what measured facts read of the file

    @property
    def targets(self) -> int:
        """How many targets the file makes: itself, its versions, their deployments and sign-offs."""
        return 1 + sum(1 + len(v.deployments) + v.signoffs for v in self.versions)


def summarize(model: ModelFile) -> FileSummary:
    return FileSummary(
        model.id,
        tuple(
            VersionSummary(
                version.version,
                version.stage,
                tuple(
                    DeploymentSummary(
                        d.id,
                        d.endpoint,
                        d.region,
                        d.traffic_percent,
                        d.warm,
                        d.replicas.min,
                        d.accelerator.type,
                        d.accelerator.count,
                    )
                    for d in version.deployments
                ),
                len(version.signoffs),
            )
            for version in model.versions
        ),
        joined_digest(model),
    )


def summary_from_plain(value: Any) -> FileSummary | None:
    """A summary read back from its plain form (``tuple`` nesting); None when it has not that shape."""
    try:
        model_id, versions, joined = value
        return FileSummary(
            model_id,
            tuple(
                VersionSummary(version, stage, tuple(DeploymentSummary(*d) for d in deployments), signoffs)
                for version, stage, deployments, signoffs in versions
            ),
            joined,
        )
    except (TypeError, ValueError):
        return None


def summary_to_plain(summary: FileSummary) -> Any:
    return (
        summary.model_id,
        tuple(
            (v.version, v.stage, tuple(tuple(d) for d in v.deployments), v.signoffs) for v in summary.versions
        ),
        summary.joined,
    )


Position = tuple[int, int]


class VersionMaterial(NamedTuple):
    """One version's own values that its data is completed with (see ``targets``)."""

    digest: str
    position: Position
    deployment_positions: list[Position]
    signoff_positions: list[Position]
    warm_replicas: int
    warm_gpus: int
    max_replicas_per_region: int
    warm_accelerators: list[str]  # accelerator types of warm deployments (rates price them)
    incumbent: str | None  # the version a canary or shadow is tested against
    fallback_for: tuple[str, str] | None  # (model, version) a fallback stands in for
    signoff_roles: list[str]
    deployments_warm: list[bool]


class Material(NamedTuple):
    data: dict[str, Any]  # ``plain_model`` of the file: versions included
    position: Position  # of the model's id
    versions: list[VersionMaterial]


def material(model: ModelFile, source: SourceMap, data: dict[str, Any]) -> Material:
    """The file's ``Material``; ``data`` is its ``plain_model``."""
    at = source.locate
    versions = []
    for vi, version in enumerate(model.versions):
        vpath = ("versions", vi)
        versions.append(
            VersionMaterial(
                version_digest(version),
                at(vpath),
                [at((*vpath, "deployments", di)) for di in range(len(version.deployments))],
                [at((*vpath, "signoffs", si)) for si in range(len(version.signoffs))],
                *_own_values(version),
            )
        )
    return Material(data, at(("id",)), versions)


def _own_values(
    version: Version,
) -> tuple[int, int, int, list[str], str | None, tuple[str, str] | None, list[str], list[bool]]:
    warm_deployments = [d for d in version.deployments if d.warm]
    incumbent = (
        version.canary.of_version
        if version.canary
        else (version.shadow.of_version if version.shadow else None)
    )
    fallback = version.fallback.for_version if version.fallback is not None else None
    return (
        sum(d.replicas.min for d in warm_deployments),
        sum(d.replicas.min * d.accelerator.count for d in warm_deployments),
        min((d.replicas.max for d in version.deployments), default=0),
        sorted({d.accelerator.type for d in warm_deployments}),
        incumbent,
        (fallback.model, fallback.version) if fallback is not None else None,
        sorted({s.role for s in version.signoffs}),
        [d.warm for d in version.deployments],
    )


def traffic_positions(source: SourceMap, summary: FileSummary) -> list[list[Position]]:
    """Per version, where each deployment's ``traffic_percent`` is: the location of an
    endpoint target whose first deployment it is (endpoints span files, so the process that
    makes them has only the summaries; with these it need not decode the file's positions)."""
    at = source.locate
    return [
        [at(("versions", vi, "deployments", di, "traffic_percent")) for di in range(len(v.deployments))]
        for vi, v in enumerate(summary.versions)
    ]


def traffic_positions_from_plain(value: Any, summary: FileSummary) -> list[list[Position]] | None:
    """Positions read back, if they have the summary's shape."""
    if not (isinstance(value, list) and len(value) == len(summary.versions)):
        return None
    for positions, version in zip(value, summary.versions, strict=True):
        if not (isinstance(positions, list) and len(positions) == len(version.deployments)):
            return None
        if not all(isinstance(p, tuple) and len(p) == 2 for p in positions):
            return None
    return value


def material_to_plain(found: Material) -> Any:
    return (found.data, found.position, [tuple(v) for v in found.versions])


def material_from_plain(value: Any) -> Material | None:
    try:
        data, position, versions = value
        if not isinstance(data, dict):
            return None
        return Material(data, position, [VersionMaterial(*v) for v in versions])
    except (TypeError, ValueError):
        return None
