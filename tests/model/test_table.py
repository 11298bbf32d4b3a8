"""train-table on the real UCI sample, then evaluate-table and score-table on patients it has never seen."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from umrisk.cli import app
from umrisk.features.spec import ModelTraining, SplitSpec, TuningSpec
from umrisk.training import codes
from umrisk.training.table import TableError, train_table

SAMPLE = Path(__file__).parents[1] / "fixtures" / "uci-diabetes-sample" / "diabetic_data_sample.csv"
SMALL = ModelTraining(split=SplitSpec(cv_folds=3), tuning=TuningSpec(n_trials=0))


def _held_out(patient: str) -> bool:
    return hashlib.sha256(f"umrisk-test:{patient}".encode()).digest()[0] < 77  # about 30 % of patients


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The sample split by a hash of the patient into a training file and a file of other patients; a model
    trained with train-table on the first."""
    root = tmp_path_factory.mktemp("table")
    df = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    other = df["patient_nbr"].map(_held_out)
    df[~other].to_csv(root / "develop.csv", index=False)
    df[other].to_csv(root / "other.csv", index=False)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    r = train_table(root / "develop.csv", "readmitted", name="uci", positive="<30", group="patient_nbr",
                    exclude=["encounter_id"], order="encounter_id", reports=root / "reports", tracking_uri=uri,
                    settings=SMALL)
    return {"root": root, "uri": uri, "result": r, "other_rows": int(other.sum()),
            "other_events": int((df.loc[other, "readmitted"] == "<30").sum())}


def test_code_columns_are_recognised_from_their_values(trained):
    notes = trained["result"]["notes"]
    for col in ("diag_1", "diag_2", "diag_3"):
        assert any(n.startswith(f"{col}: ICD9CM codes") for n in notes)
    assert any(n.startswith("patient_nbr earlier rows") for n in notes)
    numbers = pd.Series([str(v) for v in range(1, 120)])  # counts and lengths of stay are not codes
    assert codes.detect(numbers) is None
    assert codes.detect(pd.Series([f"{z:05d}" for z in range(10_000, 10_100)])) is None  # nor ZIP codes
    icd10 = pd.Series(["I50.23", "E11.9", "J44.1", "N18.3", "Z99.2", "F32.9", "I10", "K21.0", "M54.5", "R07.9",
                       "C34.90", "G47.33", "A41.9", "B20", "D64.9", "H40.9", "L03.90", "O80", "S72.001A", "T81.4XXA"])
    assert codes.detect(icd10) == "ICD10CM"
    cpt = pd.Series([str(v) for v in range(99202, 99216)] + ["J1100", "G0438", "0001F", "36415", "80053", "71046"])
    assert codes.detect(cpt) == "CPT_HCPCS"
    chapters = codes.chapter(codes.normalize(pd.Series(["428", "250.83", "V57", "I50.23"]), "ICD9CM"), "ICD9CM")
    assert chapters.tolist()[:3] == ["circulatory", "endocrine", "health services"]


def test_train_table_then_evaluate_table_on_patients_it_has_never_seen(trained):
    root, uri = trained["root"], trained["uri"]
    r = trained["result"]
    assert r["version"] == "1" and r["split"]["train"] > 0 and r["split"]["test"] > 0
    res = CliRunner().invoke(app, ["evaluate-table", "uci", str(root / "other.csv"), "--label", "readmitted",
                                   "--positive", "<30", "--version", "1", "--out", str(root / "external"),
                                   "--tracking-uri", uri, "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output.strip().splitlines()[-1])
    assert {"auroc", "auprc", "brier", "ici", "n", "events"} <= set(m)
    assert m["n"] == trained["other_rows"] and m["events"] == trained["other_events"]
    assert 0.55 < m["auroc"] < 0.8 and m["ici"] < 0.05  # better than chance on other patients, calibrated
    assert {"report.html", "model_card.md", "calibration.png"} <= {p.name for p in (root / "external").iterdir()}
    # the label and the event default to the training ones
    res = CliRunner().invoke(app, ["evaluate-table", "uci", str(root / "other.csv"), "--out",
                                   str(root / "external2"), "--tracking-uri", uri, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["auroc"] == pytest.approx(m["auroc"])


def test_score_table_ignores_row_and_column_order(trained, tmp_path):
    root, uri = trained["root"], trained["uri"]
    other = pd.read_csv(root / "other.csv", dtype=str, keep_default_na=False)
    shuffled = other.sample(frac=1, random_state=3)
    shuffled = shuffled[shuffled.columns[::-1]].drop(columns="readmitted")
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    for src, dst in ((root / "other.csv", tmp_path / "a.csv"), (tmp_path / "shuffled.csv", tmp_path / "b.csv")):
        res = CliRunner().invoke(app, ["score-table", "uci", str(src), "--out", str(dst), "--tracking-uri", uri])
        assert res.exit_code == 0, res.output
    a = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    b = pd.read_csv(tmp_path / "b.csv", keep_default_na=False)
    assert len(a) == len(other) and {"probability", "tier", "reason_1"} <= set(a.columns)
    a.index = other.index
    b.index = shuffled.index
    assert np.allclose(a["probability"], b.loc[a.index, "probability"])
    assert ((a["probability"] > 0) & (a["probability"] < 1)).all()
    assert (a["reason_1"] != "").mean() > 0.5  # most rows have a reason that raised their risk


def test_a_table_without_the_model_columns_is_refused_by_name(trained, tmp_path):
    root, uri = trained["root"], trained["uri"]
    other = pd.read_csv(root / "other.csv", dtype=str, keep_default_na=False).drop(columns="diag_2")
    other.to_csv(tmp_path / "cut.csv", index=False)
    res = CliRunner().invoke(app, ["evaluate-table", "uci", str(tmp_path / "cut.csv"), "--tracking-uri", uri])
    assert res.exit_code == 2 and "diag_2" in res.output
    res = CliRunner().invoke(app, ["evaluate-table", "nosuch", str(tmp_path / "cut.csv"), "--tracking-uri", uri])
    assert res.exit_code == 2 and "umrisk-nosuch" in res.output
    with pytest.raises(TableError, match="--positive"):
        train_table(root / "other.csv", "readmitted", tracking_uri=uri, settings=SMALL)
    # the command line takes the order column too, and names it when the table lacks it
    res = CliRunner().invoke(app, ["train-table", str(root / "other.csv"), "--label", "readmitted", "--positive",
                                   "<30", "--group", "patient_nbr", "--order", "visit_number", "--tracking-uri", uri])
    assert res.exit_code == 2 and "column 'visit_number' not in the table" in res.output


def test_gate_values_on_the_run_and_the_version_and_the_lead_over_the_champion(trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    from umrisk.training import registry

    root, uri = trained["root"], trained["uri"]
    registry.configure(uri)
    r = trained["result"]
    metrics = mlflow.get_run(r["run_id"]).data.metrics
    assert {"gate_min_auroc_value", "gate_min_auroc_limit", "gate_max_ici_ok", "gate_calibration_slope_limit_low",
            "subgroups_flagged", "lead_patient_nbr earlier rows_auroc_diff"} <= set(metrics)
    assert metrics["gate_min_auroc_value"] == pytest.approx(r["test"]["auroc"])
    tags = MlflowClient().get_model_version("umrisk-uci", r["version"]).tags
    assert tags["gate.min_auroc"].split()[0] in ("pass", "FAIL") and "limit 0.650" in tags["gate.min_auroc"]
    registry.set_alias("uci", "champion", r["version"])
    again = train_table(root / "develop.csv", "readmitted", name="uci", positive="<30", group="patient_nbr",
                        exclude=["encounter_id"], order="encounter_id", reports=root / "reports", tracking_uri=uri,
                        settings=SMALL)
    lead = again["leads"]["champion"]
    assert lead["version"] == r["version"] and lead["diff"] == pytest.approx(0, abs=1e-9)  # the same model again
