"""Issue 9 at the ``make demo`` size: both models on 20,000 members for each of five generator seeds.

For each seed (1, 13, 21, 34, 55 by default) a 20,000-member, 3-year store is generated and both specs are
trained as ``umrisk train`` does (default tuning budgets, MLflow in a temporary SQLite database). Printed per
seed: every absolute gate of each model (AUROC, ICI, calibration slope) and the readmission model's lead over
the better of LACE and HOSPITAL on the same test points; then how many seeds pass every gate and the median
lead. Targets: both models pass their gates on every seed; median lead at least +0.03.

    python -m bench.seeds_run [--members 20000] [--seeds 1,13,21,34,55]

The last line of the output is one JSON record with every figure (``bench`` reads it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import mlflow

from umrisk.features.spec import load_spec
from umrisk.features.synthetic.generate import GenerateConfig, generate
from umrisk.features.tasks import task_for
from umrisk.training import commands, registry
from umrisk.training.feature_cache import feature_table
from umrisk.training.metrics import evaluate
from umrisk.training.split import time_member_split

MODELS = ("readmission_30d", "admission_180d")
SEEDS = (1, 13, 21, 34, 55)
LEAD_TARGET = 0.03


def one_seed(seed: int, members: int, root: Path) -> dict:
    """Generate a store with ``seed`` and train both models on it; the gates, baselines and lead of each."""
    store = root / f"store-{seed}"
    generate(GenerateConfig(members=members, years=3, seed=seed, workers=2), store)
    uri = f"sqlite:///{root / f'mlflow-{seed}.db'}"
    registry.configure(uri)
    mlflow.search_experiments()
    out: dict = {"seed": seed}
    for model in MODELS:
        t0 = time.perf_counter()
        r = commands.train(model, store, root / f"reports-{seed}", uri)
        base = r["baselines"]
        row = {"seconds": time.perf_counter() - t0, "auroc": r["test"]["auroc"], "test_points": r["split"]["test"],
               "gates": {g["name"]: {"value": g["value"], "limit": g["limit"], "ok": g["ok"]} for g in r["gates"]},
               "baselines": base}
        row["passed"] = all(g["ok"] for g in r["gates"])
        row["oracle"] = oracle_on_test(model, store)
        clinical = {k: v for k, v in base.items() if k in ("lace", "hospital")}
        if clinical:
            best = max(clinical, key=clinical.get)
            row["lead"] = {"over": best, "diff": r["test"]["auroc"] - clinical[best]}
        out[model] = row
    return out


def oracle_on_test(model: str, store: Path) -> dict:
    """The generator's true probabilities judged like the model on the same test points: how far a perfect
    model's calibration slope and ICI move on a sample of this size."""
    spec = load_spec(model)
    table, _ = feature_table(store, spec)
    f = table.frame.iloc[time_member_split(table.frame, spec.model.split).test]
    truth = task_for(spec).oracle(spec, store, f)
    if truth is None or truth.isna().any():
        return {}
    m = evaluate(f["label"].to_numpy(), truth.to_numpy(), [0.1], n_boot=0)
    return {"auroc": m["auroc"], "ici": m["ici"], "calibration_slope": m["calibration_slope"],
            "events": int(f["label"].sum())}


def gate_text(row: dict) -> str:
    g = row["gates"]
    slope = g["calibration_slope"]
    return (f"AUROC {g['min_auroc']['value']:.3f} ICI {g['max_ici']['value']:.4f} slope {slope['value']:.2f} "
            + ("pass" if row["passed"] else "FAIL " + ",".join(k for k, v in g.items() if not v["ok"]))
            + (f" [oracle on the same {o['events']} events: AUROC {o['auroc']:.3f} ICI {o['ici']:.4f} slope "
               f"{o['calibration_slope']:.2f}]" if (o := row.get("oracle")) else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=20_000)
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="umrisk-seeds-") as tmp:
        for seed in seeds:
            r = one_seed(seed, args.members, Path(tmp))
            results.append(r)
            ra, ad = r["readmission_30d"], r["admission_180d"]
            lead = ra.get("lead", {})
            print(f"    seed {seed:>2}: readmission {gate_text(ra)}, lead over {lead.get('over', '?').upper()} "
                  f"{lead.get('diff', float('nan')):+.3f}; admission {gate_text(ad)}  "
                  f"({ra['seconds'] + ad['seconds']:.0f} s)", flush=True)
    passed = sum(r[m]["passed"] for r in results for m in MODELS)
    leads = [r["readmission_30d"]["lead"]["diff"] for r in results if "lead" in r["readmission_30d"]]
    median = statistics.median(leads) if leads else float("nan")
    every = passed == len(MODELS) * len(results)
    print(f"    gates passed: {passed} of {len(MODELS) * len(results)} model-seeds (target: all: "
          f"{'met' if every else 'MISSED'}); readmission lead over the better of LACE and HOSPITAL, median "
          f"{median:+.3f} (range {min(leads):+.3f} to {max(leads):+.3f}; target >= +{LEAD_TARGET:.2f}: "
          f"{'met' if median >= LEAD_TARGET else 'MISSED'})", flush=True)
    print(json.dumps({"members": args.members, "seeds": results, "median_lead": median, "all_gates": every},
                     default=float))


if __name__ == "__main__":
    main()
