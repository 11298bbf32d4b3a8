"""What every feature group reads: the store, the points, member codes and the look-back ends, computed once."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from umrisk.features.cohorts import chain_stays
from umrisk.features.events import MemberCodes, seconds
from umrisk.features.spec import ModelSpec

DAY = 86400


@dataclass
class Context:
    """``as_of`` is each point's time; ``hist`` where its history of utilization ends (the index admission for a
    discharge, ``as_of`` otherwise); ``before`` the last second counted (``hist - 1`` when the index stay itself
    must not count). Every look-up window ends at or before ``as_of``."""

    store: dict[str, pd.DataFrame]
    points: pd.DataFrame
    spec: ModelSpec
    as_of: np.ndarray
    hist: np.ndarray
    before: np.ndarray
    members: MemberCodes
    pm: np.ndarray
    cache: dict = field(default_factory=dict)

    @classmethod
    def build(cls, store: dict[str, pd.DataFrame], points: pd.DataFrame, spec: ModelSpec,
              hist: np.ndarray, exclude_index: bool) -> Context:
        mc = MemberCodes(pd.concat([store["members"]["member_id"], points["member_id"]], ignore_index=True))
        return cls(store, points, spec, seconds(points["as_of"]), hist, hist - (1 if exclude_index else 0),
                   mc, mc.encode(points["member_id"]))

    def codes(self, table: str) -> np.ndarray:
        """Member codes of a table's rows (computed once per table)."""
        key = ("codes", table)
        if key not in self.cache:
            self.cache[key] = self.members.encode(self.store[table]["member_id"])
        return self.cache[key]

    @property
    def stays(self) -> pd.DataFrame:
        """Inpatient encounters chained into stays (transfers joined)."""
        if "stays" not in self.cache:
            self.cache["stays"] = chain_stays(self.store["encounters"], 1)
        return self.cache["stays"]

    def setting_mask(self, setting: str) -> np.ndarray:
        return (self.store["encounters"]["setting"] == setting).to_numpy()
