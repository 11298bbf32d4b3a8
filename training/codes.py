"""Columns of a table that hold diagnosis or procedure codes, recognised from their values, and their
hierarchy roll-ups.

A column is a code column when nearly all its present values have the shape of one code system:

- ICD-10-CM: a letter (not U), a digit, a digit or letter, then up to four more (``I50.23``, ``E119``); most
  values must start with a letter.
- ICD-9-CM diagnoses: three digits with up to two decimals, leading zeros optional (``428``, ``250.83``,
  ``8`` for 008), ``V57``-style supplementary codes and ``E888``-style external causes. Some ``V`` or ``E``
  codes must be present: a column of plain numbers is a measurement until its values say otherwise.
- CPT / HCPCS: five digits, four digits and F, T or U (CPT categories II and III), or a letter and four digits
  (HCPCS level II); some values with a letter must be present (five-digit numbers alone may be ZIP codes).

Each code column gives three features: the code itself, its 3-character category (``250``, ``I50``, ``J12``)
and its chapter: the ICD body system from ``features/valuesets/dx_groups.csv`` (through
``umrisk.features.groups.index_stay.dx_group``), or for CPT/HCPCS the code's first character (HCPCS level
II sections are letters; CPT ranges by leading digit), a structural roll-up, not the AMA's section names.
"""

from __future__ import annotations

import re

import pandas as pd

from umrisk.features.groups.index_stay import dx_group

SHAPES = {
    "ICD10CM": re.compile(r"^[A-TV-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?$"),
    "ICD9CM": re.compile(r"^(?:[0-9]{1,3}(?:\.[0-9]{1,2})?|V[0-9]{2}(?:\.[0-9]{1,2})?|E[0-9]{3}(?:\.[0-9])?)$"),
    "CPT_HCPCS": re.compile(r"^(?:[0-9]{4}[0-9FTU]|[A-V][0-9]{4})$"),
}
MIN_SHARE = 0.95  # of present rows with the system's shape
MIN_DISTINCT = 20  # fewer distinct values: an ordinary category, whatever it looks like
MIN_LETTERED = 0.001  # ICD-9 and CPT: share of rows with a letter, so plain numbers are not taken for codes


def detect(values: pd.Series) -> str | None:
    """The code system of a column's present values (``ICD10CM``, ``ICD9CM``, ``CPT_HCPCS``), or None.

    >>> detect(pd.Series(["428", "250.83", "V57", "E888", "8"] * 5 + [str(i) for i in range(400, 420)]))
    'ICD9CM'
    >>> detect(pd.Series([str(i) for i in range(100, 160)])) is None  # numbers stay numbers
    True
    >>> detect(pd.Series([f"I{i}.{j}" for i in range(10, 20) for j in range(3)]))
    'ICD10CM'
    """
    s = values.dropna().astype(str).str.strip().str.upper()
    if len(s) == 0:
        return None
    counts = s.value_counts()
    if len(counts) < MIN_DISTINCT:
        return None
    lettered = counts[counts.index.str.match(r"^[A-Z]")].sum() / len(s)
    for system, shape in SHAPES.items():
        ok = counts[[bool(shape.match(v)) for v in counts.index]].sum() / len(s)
        if ok < MIN_SHARE:
            continue
        if system == "ICD10CM" and lettered >= 0.5:
            return system
        if system != "ICD10CM" and lettered >= MIN_LETTERED and (system != "ICD9CM" or lettered < 0.5):
            return system
    return None


def normalize(values: pd.Series, system: str) -> pd.Series:
    """Codes without dots, upper-case; ICD-9 numeric codes padded to three digits before the decimals.

    >>> normalize(pd.Series(["8", "250.83", "v57.1", None]), "ICD9CM").tolist()
    ['008', '25083', 'V571', None]
    """
    def norm(v: object) -> str | None:
        if v is None or pd.isna(v):
            return None
        v = str(v).strip().upper()
        if system == "ICD9CM" and v[:1].isdigit():
            head, _, tail = v.partition(".")
            v = head.zfill(3) + tail
        return v.replace(".", "")

    return pd.Series([norm(v) for v in values], index=values.index, dtype=object)


def category(codes: pd.Series, system: str) -> pd.Series:
    """The 3-character category of normalised codes (E codes of ICD-9 keep 4: ``E888``)."""
    def cat(v: str | None) -> str | None:
        if v is None or pd.isna(v):
            return None
        return v[:4] if system == "ICD9CM" and v.startswith("E") else v[:3]
    return pd.Series([cat(v) for v in codes], index=codes.index, dtype=object)


def chapter(codes: pd.Series, system: str) -> pd.Series:
    """The body-system chapter (ICD) or the first character (CPT/HCPCS) of normalised codes."""
    present = codes.notna()
    out = pd.Series(None, index=codes.index, dtype=object)
    if not present.any():
        return out
    c = codes[present].astype(str)
    if system in ("ICD9CM", "ICD10CM"):
        out[present] = dx_group(c, pd.Series(system, index=c.index)).to_numpy()
    else:
        out[present] = ("HCPCS " + c.str[0]).where(c.str[0].str.isalpha(), "CPT " + c.str[0] + "xxxx").to_numpy()
    return out
