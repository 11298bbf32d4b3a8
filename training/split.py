"""Splits by time and by member: earlier points train, later points test, no member on both sides."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from umrisk.features.spec import SplitSpec


def member_hash(member_ids: pd.Series, salt: str) -> np.ndarray:
    """A stable number in [0, 1) per member id (the same member lands in the same fold every time)."""
    uniq, inverse = np.unique(member_ids.astype(str).to_numpy(), return_inverse=True)
    h = np.array([int.from_bytes(hashlib.blake2b(f"{salt}:{m}".encode(), digest_size=8).digest(), "big")
                  for m in uniq], dtype=np.float64)
    return (h / 2.0**64)[inverse]


@dataclass(frozen=True)
class Split:
    """Row positions of each fold, and the time that separates training from test."""

    train: np.ndarray
    valid: np.ndarray
    calib: np.ndarray
    test: np.ndarray
    cut: pd.Timestamp

    def sizes(self) -> dict[str, int]:
        return {k: int(len(getattr(self, k))) for k in ("train", "valid", "calib", "test")}


def time_member_split(points: pd.DataFrame, spec: SplitSpec, time_col: str = "as_of",
                      group_col: str = "member_id") -> Split:
    """Split prediction points by time and member.

    The test set is the points at or after the ``1 - test_fraction`` quantile of time whose member is in
    the test group; every member with a test point is left out of the earlier folds, which are divided by
    member into training, validation and calibration.
    """
    t = pd.to_datetime(points[time_col])
    cut = t.quantile(1 - spec.test_fraction, interpolation="lower")
    late = (t >= cut).to_numpy()
    groups = points[group_col]
    in_test_group = member_hash(groups, f"test{spec.seed}") < spec.test_member_fraction
    test = late & in_test_group
    test_members = set(groups[test])
    early = ~late & ~groups.isin(test_members).to_numpy()
    u = member_hash(groups, f"fold{spec.seed}")
    valid = early & (u < spec.validation_fraction)
    calib = early & (u >= spec.validation_fraction) & (u < spec.validation_fraction + spec.calibration_fraction)
    train = early & ~valid & ~calib
    train_idx = np.flatnonzero(train)
    if spec.max_train_points and len(train_idx) > spec.max_train_points:
        rng = np.random.default_rng(spec.seed)
        train_idx = np.sort(rng.choice(train_idx, spec.max_train_points, replace=False))
    return Split(train_idx, np.flatnonzero(valid), np.flatnonzero(calib), np.flatnonzero(test), cut)
