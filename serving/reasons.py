"""Reason codes: the features that raised a member's risk most, in words with the member's own value.

Contributions are exact TreeSHAP values from LightGBM (log-odds); only features that raised the risk are
shown, largest first, each as the catalog's reason template filled with the member's value. Works on the
model's float matrix (categories as codes), so explaining one member costs microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Explainer:
    features: list[str]
    kinds: list[str]            # number | flag | category
    templates: list[str]
    levels: dict[int, list[str]]  # feature position -> category levels (code -> text)

    @classmethod
    def from_catalog(cls, features: list[str], catalog: dict[str, dict], levels: dict[str, list[str]]) -> Explainer:
        infos = [catalog.get(f, {"reason": f + " {value}", "kind": "number"}) for f in features]
        return cls(features, [i["kind"] for i in infos], [i["reason"] for i in infos],
                   {j: levels[f] for j, f in enumerate(features) if f in levels})

    def value(self, j: int, x: float):
        if math.isnan(x):
            return None
        if j in self.levels:
            return self.levels[j][int(x)]
        return int(x) if float(x).is_integer() else round(float(x), 4)

    def text(self, j: int, value) -> str:
        if self.kinds[j] == "flag":
            return self.templates[j]
        try:
            return self.templates[j].format(value=value)
        except (ValueError, TypeError):
            return self.templates[j].format(value=str(value))

    def reasons(self, contrib: np.ndarray, X: np.ndarray, k: int = 3) -> list[list[dict]]:
        """For each row, up to ``k`` reasons (feature, text, the member's value, contribution)."""
        if k == 0:
            return [[] for _ in range(len(X))]
        c = contrib[:, : len(self.features)]
        top = np.argsort(-c, axis=1)[:, : k + 3]  # a few spare in case a top feature has no value
        out = []
        for i in range(len(X)):
            row = []
            for j in top[i]:
                if c[i, j] <= 0 or len(row) == k:
                    break
                v = self.value(j, X[i, j])
                if v is None:
                    continue
                row.append({"feature": self.features[j], "text": self.text(j, v), "value": v,
                            "contribution": round(float(c[i, j]), 4)})
            out.append(row)
        return out
