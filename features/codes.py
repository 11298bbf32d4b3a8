"""Code value sets (``features/valuesets/*.csv``) and fast prefix matching against them.

Codes are compared without dots, upper-case. A value-set row matches a code when the code starts with
the row's code (``match=prefix``) or equals it (``match=exact``). Matching works on the distinct codes of
a column and maps back, so a column of millions of rows costs one dictionary look-up per distinct code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

VALUESETS = Path(__file__).parent / "valuesets"


def normalize(codes: pd.Series) -> pd.Series:
    """Codes as compared: strings, dots and spaces removed, upper-case."""
    return codes.astype("string").str.replace(".", "", regex=False).str.strip().str.upper()


@cache
def valueset(name: str) -> pd.DataFrame:
    """A value-set file (the ``#`` lines at its top name its source)."""
    df = pd.read_csv(VALUESETS / f"{name}.csv", comment="#", dtype=str, keep_default_na=False)
    if "code" in df:
        df["code"] = normalize(df["code"]).astype(str)
        if "match" not in df:
            df["match"] = "prefix"
    return df


class PrefixMap:
    """Maps codes of one code system to the labels of a value set (a code may carry several labels)."""

    def __init__(self, rows: pd.DataFrame, label: str):
        self.prefix: dict[tuple[str, str], set[str]] = {}
        self.exact: dict[tuple[str, str], set[str]] = {}
        for system, code, match, lab in rows[["code_system", "code", "match", label]].itertuples(index=False):
            target = self.exact if match == "exact" else self.prefix
            target.setdefault((system, code), set()).add(lab)
        self.max_len = max((len(c) for _, c in self.prefix), default=0)

    def labels(self, system: str, code: str) -> set[str]:
        out = set(self.exact.get((system, code), ()))
        for k in range(1, min(len(code), self.max_len) + 1):
            out |= self.prefix.get((system, code[:k]), set())
        return out

    def lookup(self, systems: pd.Series, codes: pd.Series, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(row_key, table)``: ``table[row_key[i], j]`` says whether row i's code has ``labels[j]``.

        Codes and systems are factorized (hashing, no sort; categories are free) and each distinct pair is
        looked up once, so a column of a hundred million codes costs a few integer arrays.
        """
        code_idx, code_uniq = pd.factorize(codes, use_na_sentinel=True)
        sys_idx, sys_uniq = pd.factorize(systems, use_na_sentinel=True)
        width = len(sys_uniq) + 1
        pair = np.where((code_idx < 0) | (sys_idx < 0), -1, code_idx.astype(np.int64) * width + sys_idx)
        pair_idx, pair_uniq = pd.factorize(pair)
        norm = normalize(pd.Series(np.asarray(code_uniq, dtype=object), dtype="str")).fillna("").to_numpy()
        table = np.zeros((len(pair_uniq) + 1, len(labels)), dtype=bool)  # last row: missing code or system
        pos = {lab: j for j, lab in enumerate(labels)}
        for i, p in enumerate(pair_uniq):
            if p < 0:
                continue
            c, si = divmod(int(p), width)
            for lab in self.labels(str(sys_uniq[si]), norm[c]):
                if lab in pos:
                    table[i, pos[lab]] = True
        return np.where(pair_idx < 0, len(pair_uniq), pair_idx), table

    def flags(self, systems: pd.Series, codes: pd.Series, labels: list[str]) -> pd.DataFrame:
        """One boolean column per label: does the row's code fall in it (for small frames)."""
        key, table = self.lookup(systems, codes, labels)
        return pd.DataFrame(table[key], columns=labels, index=codes.index)


@cache
def charlson() -> tuple[PrefixMap, dict[str, int]]:
    vs = valueset("charlson_quan")
    weights = vs.drop_duplicates("condition").set_index("condition")["weight"].astype(int).to_dict()
    return PrefixMap(vs, "condition"), weights


@cache
def elixhauser() -> tuple[PrefixMap, dict[str, int]]:
    w = valueset("elixhauser_weights")
    weights = dict(zip(w["condition"], w["van_walraven_weight"].astype(int), strict=True))
    return PrefixMap(valueset("elixhauser_quan"), "condition"), weights


@cache
def chronic() -> PrefixMap:
    return PrefixMap(valueset("chronic_conditions"), "condition")


@cache
def planned() -> PrefixMap:
    return PrefixMap(valueset("planned_readmission"), "category")


@cache
def oncology() -> PrefixMap:
    vs = valueset("oncology_codes").assign(label="oncology")
    return PrefixMap(vs, "label")
