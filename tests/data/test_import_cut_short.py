"""Imports that lose rows: a source file cut short, child rows whose parent is missing (issue #6, item 6).

Such an import writes the store and its rejects, but it is not ok and ``umrisk data import`` exits with 1,
naming the file and the line cut, or counting the rows lost and their missing parent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.importing import FIXTURES
from umrisk.cli import app
from umrisk.features.importers import run_import

INPATIENT = "DE1_0_2008_to_2010_Inpatient_Claims_Sample_0.csv"


def _copy(fixture: str, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / fixture, src)
    for f in src.iterdir():
        f.chmod(0o644)  # the fixtures are read-only
    return src


def _cut_in_half(path: Path) -> int:
    """Keep the first half of the file's bytes (as a copy that stopped part-way); return the last line's number."""
    data = path.read_bytes()
    kept = data[: len(data) // 2]
    path.write_bytes(kept)
    return kept.count(b"\n") + 1


def _import(kind: str, src: Path, out: Path):
    return CliRunner().invoke(app, ["data", "import", kind, str(src), "--out", str(out)])


@pytest.mark.parametrize(("kind", "fixture", "cut"), [
    ("synthea", "synthea-sample", "encounters.csv"),
    ("cms", "cms-synpuf-sample", INPATIENT),
    ("omop", "omop", "visit_occurrence.csv"),
])
def test_file_cut_in_half_fails_the_import_naming_file_and_line(tmp_path, kind, fixture, cut):
    src = _copy(fixture, tmp_path)
    line = _cut_in_half(src / cut)
    result = _import(kind, src, tmp_path / "out")
    assert result.exit_code == 1, result.output
    message = f"{cut}: line {line} is cut short (the file may be truncated)"
    assert f"LOST {message}" in result.output
    saved = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert saved["ok"] is False and saved["complete"] is False and saved["errors"] == []
    assert saved["lost"][0] == message
    # the partial row is rejected, not read: it is in the rejects file under its own line number
    if line > 1:  # else the file ends inside its header (the CMS claim header is wide): no row to reject
        rejects = pd.read_csv(tmp_path / "out" / "rejects" / "encounters.csv", dtype=str)
        row = rejects[(rejects["source_file"] == cut) & (rejects["source_row"] == str(line))]
        assert row["reason"].str.startswith("malformed row: cut short, the file may be truncated").tolist() == [True]


def test_synthea_encounters_cut_in_half_counts_the_rows_lost(tmp_path):
    src = _copy("synthea-sample", tmp_path)
    _cut_in_half(src / "encounters.csv")
    report = run_import("synthea", src, tmp_path / "out")
    lost = {m.split(":")[0]: m for m in report.lost}
    assert set(lost) == {"encounters.csv", "conditions.csv", "procedures.csv"}
    diagnoses = sum(report.tables["diagnoses"]["rejected"].values())
    assert diagnoses > 1000
    assert lost["conditions.csv"] == (f"conditions.csv: {diagnoses:,} row(s) lost from diagnoses because their "
                                      "encounter is not in the store, absent from the source or rejected "
                                      "(ENCOUNTER: unknown encounter)")


def test_rows_whose_parent_is_absent_fail_the_import_without_any_file_cut(tmp_path):
    src = _copy("synthea-sample", tmp_path)
    lines = (src / "encounters.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (src / "encounters.csv").write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")  # whole lines
    result = _import("synthea", src, tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert "cut short" not in result.output
    assert "LOST conditions.csv: " in result.output and "because their encounter is not in the store" in result.output


def test_quote_left_open_at_the_end_is_cut_short(tmp_path):
    src = _copy("omop", tmp_path)
    text = (src / "drug_exposure.csv").read_text()
    (src / "drug_exposure.csv").write_text(text.rstrip("\n") + ',"open\n')  # the line end sits inside the quote
    report = run_import("omop", src, tmp_path / "out")
    assert report.lost == ["drug_exposure.csv: line 6 is cut short (the file may be truncated)"]
    assert report.tables["medications"]["rejected"] == {"malformed row": 1}


def test_last_line_with_every_field_but_no_line_end_is_cut_short(tmp_path):
    """Cut inside the last value ('Impacted' for 'Impacted molars'): the field count cannot tell, the line end can."""
    src = _copy("omop", tmp_path)
    path = src / "visit_occurrence.csv"
    path.write_bytes(path.read_bytes().rstrip(b"\r\n"))
    report = run_import("omop", src, tmp_path / "out")
    last = len(path.read_bytes().splitlines())
    assert report.lost[0] == f"visit_occurrence.csv: line {last} is cut short (the file may be truncated)"
    assert not report.ok


def test_complete_files_import_ok_with_exit_0(tmp_path):
    result = _import("omop", FIXTURES / "omop", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "LOST" not in result.output and "Import finished." in result.output
