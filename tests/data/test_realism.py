"""Realism of the synthetic population at 20,000 members (the issue's ranges)."""

import pytest
from typer.testing import CliRunner

from umrisk.cli import app
from umrisk.features.synthetic.generate import GenerateConfig, generate
from umrisk.features.synthetic.summary import ADMISSIONS_PER_1000, realism
from umrisk.features.validate import validate_dataset


@pytest.fixture(scope="module")
def stats(tmp_path_factory):
    out = tmp_path_factory.mktemp("realism")
    return generate(GenerateConfig(members=20_000, years=3, seed=1), out), out


def test_readmission_rate_and_oracle(stats):
    real = realism(stats[0])
    assert 0.10 <= real["readmission_rate"]["value"] <= 0.20
    assert 0.75 <= real["readmission_oracle_auroc"]["value"] <= 0.88


@pytest.mark.parametrize("lob", list(ADMISSIONS_PER_1000))
def test_admissions_per_1000_within_published_range(stats, lob):
    r = realism(stats[0])["admissions_per_1000"][lob]
    assert r["range"][0] <= r["value"] <= r["range"][1]


def test_chronic_prevalence_near_published_medicare_figures(stats):
    prev = realism(stats[0])["prevalence_medicare_65_plus"]
    # CMS CCW, Medicare FFS 2018: hypertension ~58 %, diabetes ~27 %, heart failure ~14 %, COPD ~11 %
    assert prev["hypertension"] == pytest.approx(0.58, abs=0.06)
    assert prev["diabetes"] == pytest.approx(0.27, abs=0.05)
    assert prev["heart_failure"] == pytest.approx(0.14, abs=0.04)
    assert prev["copd"] == pytest.approx(0.11, abs=0.04)


def test_store_validates(stats):
    assert validate_dataset(stats[1]).ok


def test_cli_generate_then_validate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "x"
    res = runner.invoke(app, ["data", "generate", "--members", "1500", "--years", "2", "--seed", "2",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "30-day unplanned readmission rate" in res.output
    assert (out / "generation_summary.json").exists() and (out / "truth" / "admission").is_dir()
    assert runner.invoke(app, ["data", "validate", str(out)]).exit_code == 0
