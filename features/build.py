"""Point-in-time features for prediction points: one code path for a batch and for one member.

``build_features(store, points, spec)`` returns one row per point with every feature of the spec, computed by
the feature groups of ``features.groups`` that apply to the spec's task kind. For a discharge, ``as_of`` is
the index discharge and utilization counts look back from the index admission (what happened before this
stay); labs, comorbidities and drugs look back from ``as_of``. Nothing after ``as_of`` is read: every look-up
goes through ``events.EventIndex``, whose windows end at the point's own time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from umrisk.features.catalog import FeatureInfo
from umrisk.features.groups import GROUPS
from umrisk.features.groups.clinical_scores import hospital_score, lace
from umrisk.features.groups.context import Context
from umrisk.features.spec import ModelSpec
from umrisk.features.tasks import task_for

__all__ = ["FeatureSet", "build_features", "feature_set", "groups_for", "hospital_score", "lace"]


@dataclass(frozen=True)
class FeatureSet:
    """The features a spec produces, in order, with their catalog entries."""

    infos: tuple[FeatureInfo, ...]

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    @property
    def categorical(self) -> list[str]:
        return [i.name for i in self.infos if i.kind == "category"]


def groups_for(spec: ModelSpec) -> list:
    """The feature group modules that apply to the spec's task kind, in order."""
    return [g for g in GROUPS if spec.task in g.TASKS]


def feature_set(spec: ModelSpec) -> FeatureSet:
    return FeatureSet(tuple(i for g in groups_for(spec) for i in g.catalog(spec.features)))


def build_features(store: dict[str, pd.DataFrame], points: pd.DataFrame, spec: ModelSpec,
                   progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per point (same order) with the point's columns and every feature of the spec.

    ``progress`` is told the name of each feature group as it starts (for a progress bar).
    """
    step = progress or (lambda _name: None)
    task = task_for(spec)
    hist = task.history_end(points)
    ctx = Context.build(store, points, spec, hist, exclude_index=task.excludes_index)
    out: dict = {}
    for group in groups_for(spec):
        step(group.NAME)
        group.compute(ctx, out)
    fset = feature_set(spec)
    frame = pd.DataFrame({name: out[name] for name in fset.names}, index=points.index)
    for name in fset.categorical:
        frame[name] = frame[name].astype("category")
    return pd.concat([points, frame], axis=1)
