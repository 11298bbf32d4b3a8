"""Splits by time and by member: earlier points train, later points test, no member on both sides; inside
the training points, folds by member for cross-validation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from umrisk.features.spec import SplitSpec

EMPTY = np.zeros(0, dtype=np.int64)


def member_hash(member_ids: pd.Series, salt: str) -> np.ndarray:
    """A stable number in [0, 1) per member id (the same member lands in the same fold every time)."""
    uniq, inverse = np.unique(pd.Series(member_ids).astype(str).to_numpy(), return_inverse=True)
    h = np.array([int.from_bytes(hashlib.blake2b(f"{salt}:{m}".encode(), digest_size=8).digest(), "big")
                  for m in uniq], dtype=np.float64)
    return (h / 2.0**64)[inverse]


@dataclass(frozen=True)
class Split:
    """Row positions of the training and test points, and the time that separates them.

    ``valid`` and ``calib`` are empty: validation (early stopping, tuning) and calibration happen inside
    the training points by cross-validation (``member_folds``). They stay so that older callers read empty
    arrays rather than fail on a missing attribute.
    """

    train: np.ndarray
    valid: np.ndarray = field(default_factory=lambda: EMPTY)
    calib: np.ndarray = field(default_factory=lambda: EMPTY)
    test: np.ndarray = field(default_factory=lambda: EMPTY)
    cut: pd.Timestamp | None = None

    def sizes(self) -> dict[str, int]:
        return {k: int(len(getattr(self, k))) for k in ("train", "valid", "calib", "test")}


def time_member_split(points: pd.DataFrame, spec: SplitSpec, time_col: str = "as_of",
                      group_col: str = "member_id") -> Split:
    """Split prediction points by time and member.

    The test set is the points at or after the ``1 - test_fraction`` quantile of time whose member is in
    the test group; every member with a test point is left out of training, and every earlier point of
    every other member is a training point (sampled down to ``max_train_points`` if set).
    """
    t = pd.to_datetime(points[time_col])
    cut = t.quantile(1 - spec.test_fraction, interpolation="lower")
    late = (t >= cut).to_numpy()
    groups = points[group_col]
    in_test_group = member_hash(groups, f"test{spec.seed}") < spec.test_member_fraction
    test = late & in_test_group
    test_members = set(groups[test])
    train_idx = np.flatnonzero(~late & ~groups.isin(test_members).to_numpy())
    if spec.max_train_points and len(train_idx) > spec.max_train_points:
        rng = np.random.default_rng(spec.seed)
        train_idx = np.sort(rng.choice(train_idx, spec.max_train_points, replace=False))
    return Split(train=train_idx, test=np.flatnonzero(test), cut=cut)


def member_folds(groups: pd.Series | np.ndarray | None, n: int, k: int = 5,
                 seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (fit rows, held-out rows) pairs over ``n`` rows, every member's rows in one held-out fold.

    Members are dealt to folds in the order of a seeded hash of their id, so folds have nearly equal numbers
    of members and a member's fold does not depend on the other members. Without groups each row is its own
    member.

    >>> [len(held) for _, held in member_folds(pd.Series(list("aabbccdd")), 8, k=2)]
    [4, 4]
    """
    ids = pd.Series(np.arange(n) if groups is None else np.asarray(groups)).astype(str)
    uniq = ids.drop_duplicates()
    if len(uniq) < k:
        raise ValueError(f"{len(uniq)} member(s) cannot fill {k} cross-validation folds")
    order = np.argsort(member_hash(uniq, f"cv{seed}"), kind="stable")
    fold_of_member = pd.Series(np.empty(len(uniq), dtype=np.int64), index=uniq.to_numpy())
    fold_of_member.iloc[order] = np.arange(len(uniq)) % k
    fold = fold_of_member.reindex(ids.to_numpy()).to_numpy()
    rows = np.arange(n)
    return [(rows[fold != i], rows[fold == i]) for i in range(k)]
