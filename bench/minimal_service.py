"""The yardstick of ``bench/http_run.py``: a minimal BentoML service doing umrisk's model work for one member.

One ``@bentoml.service`` class with one ``@bentoml.api`` method: for a member id, the prediction and the
TreeSHAP contributions (``pred_contrib``) of that member's cached feature row with the same booster
(``num_threads=1``, as umrisk scores a few rows), then the three features that raised the risk most. No
authentication, no audit, no metrics, no validation beyond BentoML's own.

``bench/http_run.py`` writes what it needs to the folder named by ``UMRISK_MINIMAL_DIR``: ``booster.txt``
(the champion's booster), ``rows.npz`` (``member_id``, the float matrix ``X``, ``features``, and
``best_iteration``). Start it with ``bentoml serve bench.minimal_service:Minimal`` from the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import lightgbm as lgb
import numpy as np


@bentoml.service(name="minimal", workers=1, metrics={"enabled": False})
class Minimal:
    def __init__(self) -> None:
        folder = Path(os.environ["UMRISK_MINIMAL_DIR"])
        self.booster = lgb.Booster(model_file=str(folder / "booster.txt"))
        rows = np.load(folder / "rows.npz", allow_pickle=False)
        self.X = rows["X"]
        self.features = [str(f) for f in rows["features"]]
        self.best = int(rows["best_iteration"])
        self.row = {str(m): i for i, m in enumerate(rows["member_id"])}

    @bentoml.api
    def score(self, member_id: str) -> dict:
        x = self.X[self.row[member_id]][None, :]
        p = self.booster.predict(x, num_iteration=self.best, num_threads=1)
        c = self.booster.predict(x, num_iteration=self.best, pred_contrib=True, num_threads=1)[0, : len(self.features)]
        top = [j for j in np.argsort(-c, kind="stable")[:3] if c[j] > 0]
        reasons = [{"feature": self.features[j], "value": float(x[0, j]), "contribution": round(float(c[j]), 4)}
                   for j in top]
        return {"member_id": member_id, "probability": round(float(p[0]), 6), "reasons": reasons}
