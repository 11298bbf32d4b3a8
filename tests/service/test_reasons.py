"""Reasons: only features that raised this member's risk and whose value is present or abnormal, each as the
catalog's sentence with the member's value."""

import numpy as np
import pytest

from tests.service.conftest import auth
from umrisk.features.catalog import is_abnormal
from umrisk.serving.reasons import Explainer

CATALOG = {
    "cc_hyperlipidemia": {"name": "cc_hyperlipidemia", "kind": "flag", "unit": "flag", "reason": "hyperlipidemia"},
    "paid_90d": {"name": "paid_90d", "kind": "number", "unit": "USD",
                 "reason": "${value:,.0f} paid in the last 90 days"},
    "n_telehealth_365d": {"name": "n_telehealth_365d", "kind": "number", "unit": "count",
                          "reason": "{value:.0f} telehealth visits in the last 365 days",
                          "reason_one": "1 telehealth visit in the last 365 days"},
    "n_office_365d": {"name": "n_office_365d", "kind": "number", "unit": "count",
                      "reason": "{value:.0f} office visits in the last 365 days",
                      "zero_reason": "no primary-care visit in the last year"},
    "lab_sodium": {"name": "lab_sodium", "kind": "number", "unit": "mmol/L", "reason": "sodium {value:g} mmol/L",
                   "abnormal": "<135|>145"},
    "age": {"name": "age", "kind": "number", "unit": "years", "reason": "age {value:.0f}"},
}
FEATURES = list(CATALOG)


def _explain(values: dict, contributions: dict, k: int = 10, catalog=CATALOG) -> list[dict]:
    X = np.array([[values.get(f, np.nan) for f in FEATURES]], dtype=float)
    contrib = np.array([[contributions.get(f, 0.0) for f in FEATURES] + [-2.0]])  # last column: the bias
    return Explainer.from_catalog(FEATURES, catalog, {}).reasons(contrib, X, k)[0]


def test_a_condition_the_member_does_not_have_is_no_reason():
    reasons = _explain({"cc_hyperlipidemia": 0, "age": 80}, {"cc_hyperlipidemia": 0.3, "age": 0.1})
    assert [r["feature"] for r in reasons] == ["age"]
    assert _explain({"cc_hyperlipidemia": 1}, {"cc_hyperlipidemia": 0.3})[0]["text"] == "hyperlipidemia"


def test_nothing_paid_is_no_reason():
    assert _explain({"paid_90d": 0.0}, {"paid_90d": 0.4}) == []
    assert _explain({"paid_90d": 12500.0}, {"paid_90d": 0.4})[0]["text"] == "$12,500 paid in the last 90 days"


def test_a_count_of_zero_is_a_reason_only_where_the_catalog_words_the_absence():
    assert _explain({"n_telehealth_365d": 0}, {"n_telehealth_365d": 0.2}) == []
    absent = _explain({"n_office_365d": 0}, {"n_office_365d": 0.2})
    assert [r["text"] for r in absent] == ["no primary-care visit in the last year"]
    assert _explain({"n_telehealth_365d": 1}, {"n_telehealth_365d": 0.2})[0]["text"] == \
        "1 telehealth visit in the last 365 days"


def test_a_normal_lab_is_no_reason():
    assert _explain({"lab_sodium": 140.0}, {"lab_sodium": 0.5}) == []
    assert _explain({"lab_sodium": 131.0}, {"lab_sodium": 0.5})[0]["text"] == "sodium 131 mmol/L"


def test_only_features_that_raised_the_risk_largest_first_and_k_filled_past_non_reasons():
    values = {"cc_hyperlipidemia": 0, "paid_90d": 0.0, "n_telehealth_365d": 0, "lab_sodium": 140.0,
              "n_office_365d": 4, "age": 91}
    contributions = {"cc_hyperlipidemia": 0.9, "paid_90d": 0.8, "n_telehealth_365d": 0.7, "lab_sodium": 0.6,
                     "n_office_365d": 0.05, "age": 0.2}
    reasons = _explain(values, contributions, k=2)
    assert [r["feature"] for r in reasons] == ["age", "n_office_365d"]
    assert reasons[0] == {"feature": "age", "text": "age 91", "value": 91, "contribution": 0.2}
    assert _explain({"age": 91}, {"age": -0.3}) == []


def test_entries_of_a_model_registered_before_the_new_catalog_keys():
    old = {f: {k: v for k, v in e.items() if k not in ("abnormal", "zero_reason", "reason_one", "direction")}
           for f, e in CATALOG.items()}
    reasons = _explain({"cc_hyperlipidemia": 1, "n_telehealth_365d": 3, "paid_90d": 0.0},
                       {"cc_hyperlipidemia": 0.3, "n_telehealth_365d": 0.2, "paid_90d": 0.1}, catalog=old)
    assert [r["text"] for r in reasons] == ["hyperlipidemia", "3 telehealth visits in the last 365 days"]


def test_reasons_served_are_present_or_abnormal(client, served):
    """Through the API: no reason is an absent condition, $0, a zero count the catalog does not word as an
    absence, or a lab value inside its normal range."""
    from umrisk.features.store import load_store
    from umrisk.serving.api import app

    store = load_store(served["store"])
    ids = store["members"]["member_id"].astype(str).iloc[:50].tolist()
    seen = 0
    for name, model in app.state.umrisk.models.items():
        catalog = model.catalog
        r = client.post("/v1/score", json={"model": name, "member_ids": ids, "top_reasons": 10},
                        headers=auth(served["tokens"]["admin"]))
        assert r.status_code == 200, r.text
        for s in r.json()["scores"]:
            for reason in s.get("reasons", []):
                seen += 1
                entry, value = catalog[reason["feature"]], reason["value"]
                assert reason["contribution"] > 0
                if entry.get("kind") == "flag":
                    assert value == 1, reason
                elif entry.get("unit") in ("USD", "count", "points") and not isinstance(value, str):
                    assert value > 0 or entry.get("zero_reason"), reason
                if entry.get("abnormal"):
                    assert is_abnormal(float(value), entry["abnormal"]), reason
    assert seen > 0


@pytest.mark.parametrize("k", [0, 3])
def test_no_rows_no_reasons(k):
    e = Explainer.from_catalog(FEATURES, CATALOG, {})
    assert e.reasons(np.zeros((0, len(FEATURES) + 1)), np.zeros((0, len(FEATURES))), k) == []


def test_a_missing_value_the_model_encodes_at_its_low_risk_end_is_no_reason():
    """The model stands a missing value of a directed feature in at ±NEVER; that is not the member's value."""
    from umrisk.training.model import NEVER

    catalog = {**CATALOG, "age": {"name": "age", "kind": "number", "unit": "days",
                                  "reason": "last inpatient discharge {value:.0f} days earlier"}}
    assert _explain({"age": NEVER}, {"age": 0.5}, catalog=catalog) == []
    assert _explain({"age": -NEVER}, {"age": 0.5}, catalog=catalog) == []
