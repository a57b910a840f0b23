"""How a source's keys find a declared deployment: ``deployment_id`` and each deployment's selectors.

Kubernetes label keys are compared after the sanitising the sources apply (OpenCost:
``promutil.SanitizeLabelName``; kube-state-metrics: ``label_`` + the sanitised key in snake
case), FOCUS tag keys exactly or behind a provider prefix (``user:key``, ``scheme/key``),
Prometheus selectors as anchored regular expressions, like PromQL's ``=~``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from policy_engine.models.portfolio import ModelFile, Selectors

if TYPE_CHECKING:
    from policy_engine.loading import Portfolio  # (loading's summaries carry ``joined_digest``)

_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def sanitize_label(key: str) -> str:
    """OpenCost's (and Prometheus') SanitizeLabelName: every invalid character becomes ``_``."""
    return _INVALID_LABEL_CHAR.sub("_", key)


def ksm_label(key: str) -> str:
    """The label kube-state-metrics v2 exports for a pod label key on ``kube_pod_labels``."""
    return "label_" + _CAMEL.sub(r"\1_\2", sanitize_label(key)).lower()


def tag_value(tags: dict[str, object], key: str) -> str | None:
    """A FOCUS tag by key, exactly or behind a provider prefix (``user:key``, ``scheme/key``)."""
    value = tags.get(key)
    if value is None:
        for name, candidate in tags.items():
            if name.endswith((":" + key, "/" + key)):
                value = candidate
                break
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DeploymentInfo(NamedTuple):
    """A declared deployment with what the aggregation needs from its version and model."""

    id: str
    model: str
    version: str
    stage: str
    endpoint: str
    region: str
    selectors: Selectors
    util_floor: float | None
    min_traffic_share: float | None

    @property
    def target(self) -> str:
        return f"{self.model}@{self.version}/{self.id}"

    @property
    def version_target(self) -> str:
        return f"{self.model}@{self.version}"


def deployment_infos(model: ModelFile) -> Iterator[DeploymentInfo]:
    """The deployments of one model file, with what the aggregation needs of their version and
    model: all it reads of the file, besides the model's own ``exit_criteria_defaults``."""
    defaults = model.exit_criteria_defaults
    for version in model.versions:
        share = version.exit_criteria.min_traffic_share if version.exit_criteria else None
        if share is None and defaults is not None:
            share = defaults.min_traffic_share
        for deployment in version.deployments:
            yield DeploymentInfo(
                id=deployment.id,
                model=model.id,
                version=version.version,
                stage=version.stage,
                endpoint=deployment.endpoint,
                region=deployment.region,
                selectors=deployment.selectors,
                util_floor=defaults.idle_util_floor if defaults else None,
                min_traffic_share=share,
            )


def joined_digest(model: ModelFile) -> str:
    """A digest of everything the aggregation reads of one model file (``deployment_infos`` and
    the model's ``exit_criteria_defaults``): two files with equal digests give equal measured
    facts, so that those can be remembered (see ``residency.remembered``)."""
    defaults = model.exit_criteria_defaults
    read: list[object] = [model.id, defaults.__dict__ if defaults is not None else None]
    for info in deployment_infos(model):
        # every field, a model by its field values (a model's own repr costs several times more)
        read += info[:_SELECTORS]
        read += (info.selectors.__dict__, *info[_SELECTORS + 1 :])
    return hashlib.sha256(repr(read).encode()).hexdigest()[:32]


_SELECTORS = DeploymentInfo._fields.index("selectors")


class DeploymentIndex:
    """Every declared deployment, by id and by each kind of selector."""

    def __init__(self, portfolio: Portfolio) -> None:
        self.by_id: dict[str, DeploymentInfo] = {}
        self.currency = portfolio.portfolio.portfolio.currency
        self.hours_per_month = portfolio.portfolio.portfolio.hours_per_month
        for entry in portfolio.models:
            for info in deployment_infos(entry.model):
                self.by_id[info.id] = info

    @cached_property
    def _k8s(self) -> dict[tuple[str, str], list[str]]:
        index: dict[tuple[str, str], list[str]] = {}
        for info in self.by_id.values():
            for key, value in info.selectors.k8s_labels.items():
                index.setdefault((sanitize_label(key), value), []).append(info.id)
        return index

    @cached_property
    def _resource_ids(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for info in self.by_id.values():
            for resource in info.selectors.focus_resource_ids:
                index.setdefault(resource, []).append(info.id)
        return index

    @cached_property
    def _prometheus(self) -> list[tuple[str, list[tuple[str, re.Pattern[str]]]]]:
        out = []
        for info in self.by_id.values():
            matchers = info.selectors.prometheus
            if matchers:
                out.append((info.id, [(k, re.compile(v)) for k, v in sorted(matchers.items())]))
        return out

    def by_label(self, key: str, value: str) -> str | None:
        """The deployment selected by Kubernetes label ``key=value``, else one with id ``value``."""
        found = self._k8s.get((sanitize_label(key), value), [])
        if len(found) == 1:
            return found[0]
        if not found and value in self.by_id:
            return value
        return None

    def match_labels(self, labels: dict[str, str]) -> str | None:
        """The one deployment whose k8s_labels or focus_tags selector all appear in ``labels``."""
        clean = {sanitize_label(k): v for k, v in labels.items()}
        candidates = {d for item in clean.items() for d in self._k8s.get(item, [])}
        matched = set()
        for dep_id in candidates:
            selectors = self.by_id[dep_id].selectors.k8s_labels
            if all(clean.get(sanitize_label(k)) == v for k, v in selectors.items()):
                matched.add(dep_id)
        if not matched:
            matched = set(self._focus_candidates(dict(labels)))
        return matched.pop() if len(matched) == 1 else None

    def _focus_candidates(self, tags: dict[str, object]) -> list[str]:
        found = []
        for info in self.by_id.values():
            wanted = info.selectors.focus_tags
            if wanted and all(tag_value(tags, k) == v for k, v in wanted.items()):
                found.append(info.id)
        return found

    def match_focus(self, tags: dict[str, object], resource_id: str | None) -> list[str]:
        """Deployments whose focus_tags all match ``tags`` or that list ``resource_id``."""
        found = set(self._focus_candidates(tags)) if tags else set()
        if resource_id:
            found.update(self._resource_ids.get(resource_id, []))
        return sorted(found)

    def match_prometheus(self, series: dict[str, str]) -> list[str]:
        """Deployments whose ``selectors.prometheus`` matchers all match the series' labels."""
        return [
            dep_id
            for dep_id, matchers in self._prometheus
            if all(pattern.fullmatch(series.get(key, "")) for key, pattern in matchers)
        ]

    def guess_label_key(self) -> str | None:
        """The k8s label key most deployments are selected by (the usual deployment label)."""
        counts: dict[str, int] = {}
        for info in self.by_id.values():
            for key in info.selectors.k8s_labels:
                counts[key] = counts.get(key, 0) + 1
        if not counts:
            return None
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0]
