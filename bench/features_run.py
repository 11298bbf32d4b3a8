"""One feature-building measurement, run as its own process by ``bench`` (prints one JSON line).

``TASK`` is ``admission`` (load, the cohort at one scoring date, its features), ``readmission`` (load,
every index stay, its features) or ``counts`` (the windowed utilization counts, 9 settings x 5 windows,
by umrisk's EventIndex and, side by side on the same in-memory frames, by DuckDB; the two must agree).
"""

from __future__ import annotations

import json
import sys
import time

import duckdb
import numpy as np
import pandas as pd

from umrisk.features.build import build_features
from umrisk.features.cohorts import discharge_cohort, member_month_cohort
from umrisk.features.events import EventIndex, MemberCodes, seconds
from umrisk.features.groups.utilization import SETTING_WORDS
from umrisk.features.spec import load_spec
from umrisk.features.store import load_store

WINDOWS = (30, 90, 180, 365, 730)


def umrisk_counts(enc: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    mc = MemberCodes(points["member_id"])
    em, pm = mc.encode(enc["member_id"]), mc.encode(points["member_id"])
    t, as_of = seconds(enc["admit_time"]), seconds(points["as_of"])
    out = {}
    setting = enc["setting"].to_numpy()
    for s in SETTING_WORDS:
        sel = setting == s
        idx = EventIndex(em[sel], t[sel])
        for w in WINDOWS:
            out[f"n_{s}_{w}d"] = idx.count(pm, as_of, w)
    return pd.DataFrame(out)


def duckdb_counts(enc: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    cols = ",\n".join(
        f"count(*) FILTER (WHERE e.setting = '{s}' AND e.admit_time > p.as_of - INTERVAL {w} DAY) AS n_{s}_{w}d"
        for s in SETTING_WORDS for w in WINDOWS)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.register("enc", enc[["member_id", "setting", "admit_time"]])
    con.register("pts", points[["member_id", "as_of"]].assign(i=np.arange(len(points))))
    sql = f"""
        SELECT p.i, {cols}
        FROM pts p LEFT JOIN enc e
          ON e.member_id = p.member_id AND e.admit_time <= p.as_of
         AND e.admit_time > p.as_of - INTERVAL {max(WINDOWS)} DAY
        GROUP BY p.i ORDER BY p.i"""
    return con.execute(sql).df().drop(columns="i")


def main(store_dir: str, task: str) -> None:
    res: dict = {}
    t0 = time.perf_counter()
    store = load_store(store_dir)
    res["load_s"] = time.perf_counter() - t0
    res["events"] = int(sum(len(store[t]) for t in ("encounters", "diagnoses", "procedures", "medications", "labs")))
    if task == "admission":
        spec = load_spec("admission_180d")
        t0 = time.perf_counter()
        pts, _ = member_month_cohort(store, spec, dates=[pd.Timestamp("2025-06-01")])
        res["cohort_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_features(store, pts, spec)
        res["features_s"] = time.perf_counter() - t0
        res["points"] = len(pts)
    elif task == "readmission":
        spec = load_spec("readmission_30d")
        t0 = time.perf_counter()
        pts, _ = discharge_cohort(store, spec)
        res["cohort_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_features(store, pts, spec)
        res["features_s"] = time.perf_counter() - t0
        res["points"] = len(pts)
    else:
        pts, _ = member_month_cohort(store, load_spec("admission_180d"), dates=[pd.Timestamp("2025-06-01")])
        # the frame as the store loads it (member ids and settings as categories), the same for both engines
        enc = store["encounters"][["member_id", "setting", "admit_time"]]
        ours, theirs = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            a = umrisk_counts(enc, pts)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = duckdb_counts(enc, pts)
            theirs.append(time.perf_counter() - t0)
        res["counts_equal"] = bool((a.to_numpy() == b.to_numpy()).all())
        res["counts_umrisk_s"] = float(np.median(ours))
        res["counts_duckdb_s"] = float(np.median(theirs))
    print(json.dumps(res))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
