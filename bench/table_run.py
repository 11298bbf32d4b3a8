"""train-table then evaluate-table on the UCI development half, beside a plain LightGBM on the same splits.

Three patient-grouped 80/20 splits (seeds 1, 2, 3; a seeded hash of ``patient_nbr``). On each, the 80 % is
written to a file and trained on with ``train-table`` (default settings; encounter order from
``encounter_id``), and the held-out 20 % is scored with ``evaluate-table``. The plain LightGBM sees the same
80 %: text columns as pandas categories, numbers as numbers, early stopping on an inner 10 % patient split,
LightGBM's default parameters otherwise (learning rate 0.05). Prints one line per split, the medians and the
difference beside the target (train-table at least 0.01 above), then one JSON line.

Usage: ``python -m bench.table_run [TABLE]`` (default ``$UMRISK_UCI_DEV`` or
``../shared/data/uci-diabetes-dev/diabetic_data_dev.csv`` beside the checkout).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from umrisk.training import commands
from umrisk.training.split import member_hash
from umrisk.training.table import clean, train_table

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "uci-diabetes-dev" / "diabetic_data_dev.csv"
LABEL, POSITIVE, GROUP, ID = "readmitted", "<30", "patient_nbr", "encounter_id"
SEEDS = (1, 2, 3)
TARGET = 0.01


def plain_lightgbm(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> float:
    """Test AUROC of LightGBM with categorical columns and early stopping on an inner 10 % patient split."""
    def frame(df: pd.DataFrame) -> pd.DataFrame:
        X = clean(df.drop(columns=[LABEL, GROUP, ID]))
        out = pd.DataFrame(index=X.index)
        for c in X.columns:
            num = pd.to_numeric(X[c], errors="coerce")
            out[c] = num if num.notna().sum() >= 0.98 * X[c].notna().sum() else X[c].astype("object")
        return out

    X, Xt = frame(train), frame(test)
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            cats = pd.Categorical(X[c].dropna().unique())
            X[c] = pd.Categorical(X[c], categories=cats.categories)
            Xt[c] = pd.Categorical(Xt[c], categories=cats.categories)
    y = (train[LABEL] == POSITIVE).to_numpy().astype(int)
    yt = (test[LABEL] == POSITIVE).to_numpy().astype(int)
    inner = member_hash(train[GROUP], f"inner{seed}") < 0.1
    params = {"objective": "binary", "learning_rate": 0.05, "verbosity": -1, "seed": seed, "num_threads": 2}
    booster = lgb.train(params, lgb.Dataset(X[~inner], y[~inner]), num_boost_round=5000,
                        valid_sets=[lgb.Dataset(X[inner], y[inner])],
                        callbacks=[lgb.early_stopping(100, verbose=False)])
    return float(roc_auc_score(yt, booster.predict(Xt, num_iteration=booster.best_iteration)))


def main(path: Path) -> None:
    warnings.simplefilter("ignore")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="umrisk-table-bench-") as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        for seed in SEEDS:
            held = member_hash(df[GROUP], f"bench{seed}") < 0.2
            train, test = df[~held], df[held]
            train.to_csv(root / f"train{seed}.csv", index=False)
            test.to_csv(root / f"held{seed}.csv", index=False)
            t0 = time.perf_counter()
            r = train_table(root / f"train{seed}.csv", LABEL, name=f"uci{seed}", group=GROUP, exclude=[ID],
                            positive=POSITIVE, order=ID, reports=root / "reports", tracking_uri=uri)
            seconds = time.perf_counter() - t0
            e = commands.evaluate_table(f"uci{seed}", root / f"held{seed}.csv", version=r["version"],
                                        out=root / f"external{seed}", tracking_uri=uri)
            t0 = time.perf_counter()
            plain = plain_lightgbm(train, test, seed)
            plain_seconds = time.perf_counter() - t0
            rows.append({"seed": seed, "train_rows": len(train), "held_rows": len(test), "umrisk": e["auroc"],
                         "umrisk_ci": [e["auroc_ci_low"], e["auroc_ci_high"]], "umrisk_ici": e["ici"],
                         "plain": plain, "umrisk_seconds": seconds, "plain_seconds": plain_seconds,
                         "seconds": r["seconds"]})
            print(f"    seed {seed}: {len(train):,} training rows, {len(test):,} held out; train-table + "
                  f"evaluate-table AUROC {e['auroc']:.3f} ({e['auroc_ci_low']:.3f}-{e['auroc_ci_high']:.3f}, ICI "
                  f"{e['ici']:.4f}, trained in {seconds:.0f} s); plain LightGBM {plain:.3f} ({plain_seconds:.0f} s); "
                  f"difference {e['auroc'] - plain:+.3f}", flush=True)
    u = float(np.median([r["umrisk"] for r in rows]))
    p = float(np.median([r["plain"] for r in rows]))
    d = float(np.median([r["umrisk"] - r["plain"] for r in rows]))
    print(f"    medians: train-table {u:.3f}, plain LightGBM {p:.3f}; difference {u - p:+.3f} (median of the "
          f"per-split differences {d:+.3f}; target >= +{TARGET:.2f}: {'met' if u - p >= TARGET else 'MISSED'})",
          flush=True)
    print(json.dumps({"splits": rows, "median_umrisk": u, "median_plain": p, "difference": u - p}))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.environ.get("UMRISK_UCI_DEV", DEFAULT)))
