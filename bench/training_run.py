"""Train both models on a store with MLflow tracking, as ``umrisk train`` does (prints one JSON line).

Run by ``bench`` on the 100,000-member population. Reports, per model, the wall time of each stage, the
test AUROC against the oracle and the clinical baselines, ICI, and the share MLflow logging adds.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import mlflow

from umrisk.training import commands, registry


def main(store: str) -> None:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        registry.configure(uri)
        mlflow.search_experiments()  # create the tracking database first: its one-off set-up is not logging
        start = time.perf_counter()
        for model in ("readmission_30d", "admission_180d"):
            t0 = time.perf_counter()
            r = commands.train(model, Path(store), Path(tmp) / "reports", uri)
            out[model] = {"wall": time.perf_counter() - t0, "seconds": r["seconds"], "test": r["test"],
                          "baselines": r["baselines"], "split": r["split"]}
        out["total_wall"] = time.perf_counter() - start
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main(sys.argv[1])
