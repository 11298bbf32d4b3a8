"""Reason codes: the features that raised a member's risk most, each as a sentence with the member's value.

Contributions are exact TreeSHAP values from LightGBM (log-odds). A feature is a reason only when it raised
this member's risk (positive contribution) and its value is present or abnormal: the catalog's
``reason_text`` gives the sentence for the member's value, or None when that value can never be a reason (a
condition the member does not have, $0 paid, a count of 0 unless the catalog words the absence as a risk,
a lab inside its normal range). The catalog entries are those registered with the model (dicts; keys a
model registered before they existed are read as absent). Works on the model's float matrix (categories as
codes), so explaining one member costs microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from umrisk.features.catalog import reason_text
from umrisk.training.model import NEVER


@dataclass(frozen=True)
class Explainer:
    features: list[str]
    entries: list[Mapping]        # the catalog entry of each feature (kind, unit, reason, abnormal, ...)
    levels: dict[int, list[str]]  # feature position -> category levels (code -> text)

    @classmethod
    def from_catalog(cls, features: list[str], catalog: dict[str, Mapping], levels: dict[str, list[str]]) -> Explainer:
        entries = [catalog.get(f) or {"name": f, "kind": "number", "reason": f + " {value}"} for f in features]
        return cls(features, entries, {j: levels[f] for j, f in enumerate(features) if f in levels})

    def value(self, j: int, x: float):
        """The member's value of feature ``j`` in words' terms: None when missing (NaN, or the model's stand-in
        for a missing value of a feature with a direction, ``RiskModel.NEVER``)."""
        if math.isnan(x) or abs(x) >= NEVER:
            return None
        if j in self.levels:
            return self.levels[j][int(x)]
        return int(x) if float(x).is_integer() else round(float(x), 4)

    def reasons(self, contrib: np.ndarray, X: np.ndarray, k: int = 3) -> list[list[dict]]:
        """For each row, up to ``k`` reasons (feature, sentence, the member's value, contribution), largest
        contribution first."""
        if k == 0 or len(X) == 0:
            return [[] for _ in range(len(X))]
        c = contrib[:, : len(self.features)]
        out = []
        for i in range(len(X)):
            row = []
            raised = np.flatnonzero(c[i] > 0)
            for j in raised[np.argsort(-c[i, raised], kind="stable")]:
                v = self.value(j, X[i, j])
                text = None if v is None else reason_text(self.entries[j], v)
                if text is None:
                    continue
                row.append({"feature": self.features[j], "text": text, "value": v,
                            "contribution": round(float(c[i, j]), 4)})
                if len(row) == k:
                    break
            out.append(row)
        return out
