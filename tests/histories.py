"""Hand-built patient histories for rule-by-rule tests of cohorts, labels and features."""

from __future__ import annotations

import pandas as pd

from umrisk.features.schema import TABLES, conform


class History:
    """A tiny store built member by member: ``h.stay("m1", "2024-03-01", "2024-03-05", ...)``."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {name: [] for name in TABLES}
        self._n = 0

    def member(self, member_id: str, birth: str = "1950-06-01", sex: str = "F", death: str | None = None,
               enrolled: tuple[str, str] | list[tuple[str, str]] = ("2020-01-01", "2025-12-31"),
               lob: str = "medicare") -> History:
        self.rows["members"].append({"member_id": member_id, "birth_date": birth, "sex": sex,
                                     "race_ethnicity": None, "state": None, "death_date": death})
        spans = [enrolled] if isinstance(enrolled, tuple) else enrolled
        for start, end in spans:
            self.rows["enrollment"].append({"member_id": member_id, "start_date": start, "end_date": end,
                                            "line_of_business": lob})
        return self

    def _id(self) -> str:
        self._n += 1
        return f"e{self._n}"

    def stay(self, member_id: str, admit: str, discharge: str | None, disposition: str = "home",
             admission_type: str = "emergency", dx: str = "J189", procedures: tuple[str, ...] = (),
             facility: str = "F1") -> str:
        eid = self._id()
        self.rows["encounters"].append({
            "encounter_id": eid, "member_id": member_id, "setting": "inpatient", "admit_time": admit,
            "discharge_time": discharge, "admission_type": admission_type, "discharge_disposition": disposition,
            "principal_dx": dx, "facility_id": facility, "paid_amount": 10000.0})
        self.rows["diagnoses"].append({"member_id": member_id, "encounter_id": eid, "time": admit, "code": dx,
                                       "code_system": "ICD10CM", "is_principal": True})
        for code in procedures:
            self.rows["procedures"].append({"member_id": member_id, "encounter_id": eid, "time": admit,
                                            "code": code, "code_system": "ICD10PCS"})
        return eid

    def visit(self, member_id: str, time: str, setting: str = "emergency", dx: str = "R079") -> str:
        eid = self._id()
        self.rows["encounters"].append({
            "encounter_id": eid, "member_id": member_id, "setting": setting, "admit_time": time,
            "discharge_time": time, "admission_type": "unknown", "discharge_disposition": "unknown",
            "principal_dx": dx, "facility_id": None, "paid_amount": 500.0})
        self.rows["diagnoses"].append({"member_id": member_id, "encounter_id": eid, "time": time, "code": dx,
                                       "code_system": "ICD10CM", "is_principal": True})
        return eid

    def dx(self, member_id: str, time: str, code: str, system: str = "ICD10CM") -> History:
        self.rows["diagnoses"].append({"member_id": member_id, "encounter_id": None, "time": time, "code": code,
                                       "code_system": system, "is_principal": False})
        return self

    def lab(self, member_id: str, time: str, loinc: str, value: float, unit: str = "") -> History:
        self.rows["labs"].append({"member_id": member_id, "time": time, "code": loinc, "value": value, "unit": unit})
        return self

    def fill(self, member_id: str, time: str, drug_class: str, code: str = "0000", days: float = 30) -> History:
        self.rows["medications"].append({"member_id": member_id, "time": time, "code": code, "code_system": "RXNORM",
                                         "drug_class": drug_class, "days_supply": days})
        return self

    def store(self) -> dict[str, pd.DataFrame]:
        out = {}
        for name, spec in TABLES.items():
            df = pd.DataFrame(self.rows[name], columns=spec.names)
            out[name] = conform(df, name) if len(df) else _empty(name)
        return out


def _empty(name: str) -> pd.DataFrame:
    kinds = {"string": "object", "timestamp": "datetime64[us]", "float": "float64", "int": "int64", "bool": "bool"}
    return pd.DataFrame({c.name: pd.Series(dtype=kinds[c.kind]) for c in TABLES[name].columns})
