"""What the pages show, gathered from the service's state with no HTTP in sight: the live queue (the same
calls as ``GET /v1/review-queue``), a case with the member's risks and two-year timeline, the outreach list
with each member's last recorded contact, code descriptions from the value sets, and the models' cards."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from umrisk.features.catalog import abnormal_mask, labs
from umrisk.serving.cases.models import STATUSES, OutreachContact
from umrisk.serving.cases.queue import live_queue as cases_queue
from umrisk.serving.cases.repository import utcnow

TIMELINE_DAYS = 730


# ---------------------------------------------------------------------- code descriptions
def _csv(package: str, name: str) -> pd.DataFrame:
    with resources.files(package).joinpath(name).open(encoding="utf-8") as fh:
        return pd.read_csv(fh, comment="#", dtype=str)


@cache
def descriptions() -> dict[str, str]:
    """Code -> words, from the value sets that carry descriptions (procedure and prior-authorization codes,
    ICD-10-CM and ICD-9-CM condition codes). A code in none of them has no description."""
    out: dict[str, str] = {}
    for package, name, code_cols in (
            ("umrisk.features", "synthetic/data/review_codes.csv", ["code"]),
            ("umrisk.features", "synthetic/data/procedures.csv", ["code"]),
            ("umrisk.features", "valuesets/acute_conditions.csv", ["code"]),
            ("umrisk.features", "synthetic/data/condition_codes.csv", ["icd10cm", "icd9cm"])):
        try:
            df = _csv(package, name)
        except FileNotFoundError:
            continue
        for col in code_cols:
            for code, words in zip(df[col], df["description"], strict=True):
                if isinstance(code, str) and isinstance(words, str):
                    out.setdefault(code.replace(".", "").upper(), words)
    return out


def described(codes: list[dict]) -> list[dict]:
    """``[{"code", "system", "description"}]`` for the codes of a case."""
    words = descriptions()
    return [{**c, "description": words.get(str(c.get("code") or "").replace(".", "").upper())} for c in codes]


# ---------------------------------------------------------------------- the queue
def live_queue(state, statuses: list[str], service_type: str | None, urgency: str | None, assignee: str | None,
               now: dt.datetime, minutes_per_case: float = 30.0) -> list[dict]:
    """The open cases in working order, as ``GET /v1/review-queue`` gives them, with the codes described."""
    queued = cases_queue(state.cases, state.scorer, statuses, service_type, urgency, assignee, now, minutes_per_case)
    for q in queued:
        q["codes"] = described(q["codes"])
    return queued


def scores_shown(queued: list[dict]) -> list[dict]:
    """The scores a queue shows, one per case and model, as the audit records scores served."""
    return [dict(r, member_id=q["member_id"], model=name) for q in queued for name, r in q["risks"].items()]


# ---------------------------------------------------------------------- a case
def member_cases(state, member_id: str, request_id: str) -> list[dict]:
    """The member's other cases in the case store, newest first."""
    rows = [c for c in state.cases.cases(STATUSES) if c["member_id"] == member_id and c["request_id"] != request_id]
    return sorted(rows, key=lambda c: c["received_time"], reverse=True)


def store_requests(history: dict[str, pd.DataFrame]) -> list[dict]:
    """The member's review requests in the history store (earlier requests with their recorded status)."""
    rr = history.get("review_requests")
    if rr is None or not len(rr):
        return []
    rr = rr.sort_values("received_time", ascending=False)
    words = descriptions()
    return [{"request_id": str(r.request_id), "received_time": pd.Timestamp(r.received_time).to_pydatetime(),
             "service_type": str(r.service_type), "code": None if pd.isna(r.code) else str(r.code),
             "description": words.get(str(r.code)), "urgency": str(r.urgency), "status": str(r.status)}
            for r in rr.itertuples()]


def timeline(history: dict[str, pd.DataFrame], end: pd.Timestamp, days: int = TIMELINE_DAYS) -> dict:
    """Admissions, emergency visits and key labs (the labs the features read, with their abnormal rule) in the
    ``days`` before ``end``."""
    start = end - pd.Timedelta(days=days)
    enc = history["encounters"]
    enc = enc[(enc["admit_time"] >= start) & (enc["admit_time"] <= end)]
    words = descriptions()

    def dx(code) -> str:
        return "" if pd.isna(code) else f"{code}" + (f" {words[str(code)]}" if str(code) in words else "")

    stays = [{"admit": pd.Timestamp(r.admit_time).to_pydatetime(),
              "discharge": None if pd.isna(r.discharge_time) else pd.Timestamp(r.discharge_time).to_pydatetime(),
              "type": str(r.admission_type), "disposition": str(r.discharge_disposition), "dx": dx(r.principal_dx),
              "days": None if pd.isna(r.discharge_time) else int((pd.Timestamp(r.discharge_time).normalize()
                                                                 - pd.Timestamp(r.admit_time).normalize()).days)}
             for r in enc[enc["setting"] == "inpatient"].sort_values("admit_time").itertuples()]
    ed = [{"time": pd.Timestamp(r.admit_time).to_pydatetime(), "dx": dx(r.principal_dx)}
          for r in enc[enc["setting"] == "emergency"].sort_values("admit_time").itertuples()]
    lab_rows = []
    lb = history["labs"]
    lb = lb[(lb["time"] >= start) & (lb["time"] <= end)]
    for name, spec in labs().iterrows():
        one = lb[lb["code"].astype(str).isin(spec["loinc"])].sort_values("time")
        if not len(one):
            continue
        flag = abnormal_mask(one["value"].to_numpy(dtype=float), spec["abnormal"])
        for (t, v), bad in zip(one[["time", "value"]].itertuples(index=False), flag, strict=True):
            lab_rows.append({"lab": spec["words"], "key": name, "time": pd.Timestamp(t).to_pydatetime(),
                             "value": float(v), "unit": spec["unit"], "abnormal": bool(bad),
                             "rule": spec["abnormal"]})
    lab_rows.sort(key=lambda r: r["time"])
    return {"start": start.to_pydatetime(), "end": end.to_pydatetime(), "stays": stays, "ed": ed, "labs": lab_rows}


# ---------------------------------------------------------------------- outreach
def last_contacts(state, member_ids: list[str]) -> dict[str, dict]:
    """Each member's last recorded contact (time, channel, outcome, who)."""
    if not member_ids:
        return {}
    with state.cases.session() as s:
        latest = (select(OutreachContact.member_id, func.max(OutreachContact.id).label("id"))
                  .where(OutreachContact.member_id.in_(member_ids)).group_by(OutreachContact.member_id).subquery())
        rows = s.scalars(select(OutreachContact).join(latest, OutreachContact.id == latest.c.id)).all()
        return {r.member_id: {"time": r.time, "channel": r.channel, "outcome": r.outcome,
                              "recorded_by": r.recorded_by} for r in rows}


def outreach_models(state) -> list[str]:
    able = []
    for name in state.models:
        try:
            state.scorer.outreach_model(name)
            able.append(name)
        except ValueError:
            continue
    return able


# ---------------------------------------------------------------------- models
def model_card(name: str, version: str) -> dict:
    """The card the evaluation wrote for a registered version (``evaluation/model_card.json`` of its run) and
    the run's lineage, or ``{}`` when the run has none."""
    return _card(name, version)


@cache
def _card(name: str, version: str) -> dict:
    import mlflow

    from umrisk.training import registry

    mv = registry.resolve(name, version=version)
    out: dict = {"run_id": mv.run_id, "tags": dict(mv.tags or {})}
    with tempfile.TemporaryDirectory() as tmp:
        for key, path in (("card", "evaluation/model_card.json"), ("fingerprint", "lineage/data_fingerprint.json")):
            try:
                local = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=path, dst_path=tmp)
                out[key] = json.loads(Path(local).read_text())
            except Exception:  # noqa: BLE001 - a run without the artifact shows the version's tags only
                out[key] = {}
    return out


def hours_left(deadline: dt.datetime, now: dt.datetime | None = None) -> float:
    return round(((deadline - (now or utcnow())) / dt.timedelta(hours=1)), 1)


def percent(p: float | None) -> str:
    return "" if p is None or (isinstance(p, float) and np.isnan(p)) else f"{100 * p:.1f} %"
