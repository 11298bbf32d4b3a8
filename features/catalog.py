"""The feature catalog: every feature's name, plain-language description, unit, group, and how it reads as a reason.

Each feature group (``features.groups``) declares its own entries. Reason codes are read from here, never
written again elsewhere: ``reason_text(info, value)`` gives the sentence for a member's own value, or None
when that value can never be a reason for high risk:

- a yes/no feature (``kind="flag"``) is a reason only when present (1);
- a lab value is a reason only when abnormal by its rule (``abnormal``, from ``valuesets/labs.csv``);
- a count, an amount of money or a score of points is a reason only when above zero, unless the entry
  words what an absence means (``zero_reason``, e.g. "no office visit in the last 365 days");
- any other value (age, days since, a category) is a reason when known.

``direction`` is the clinically established direction of a feature's effect on risk where there is one
(``"increasing"``: more means riskier), for monotone constraints and behavioural tests.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache

import numpy as np
import pandas as pd

from umrisk.features import codes

MONEY_OR_COUNT = ("count", "USD", "points")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_WORDS = {"<": "below", "<=": "at or below", ">": "above", ">=": "or above"}


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    description: str
    unit: str
    group: str
    kind: str = "number"            # number | flag | category
    reason: str = "{value}"         # filled with the member's own value for reason codes
    tasks: tuple[str, ...] = ("discharge", "member_month")
    reason_one: str | None = None   # the sentence when the value is exactly 1 (singular)
    zero_reason: str | None = None  # the sentence when a count of 0 is itself a risk (an absence)
    abnormal: str | None = None     # a lab rule such as "<135|>145": only abnormal values are reasons
    direction: str | None = None    # "increasing" where more is clinically established to mean riskier

    def to_dict(self) -> dict:
        return asdict(self)


def _comparisons(rule: str) -> list[tuple[str, float]]:
    out = []
    for part in rule.split("|"):
        m = re.fullmatch(r"\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*", part)
        if not m:
            raise ValueError(f"abnormal rule {rule!r}: each part is <, <=, > or >= and a number")
        out.append((m.group(1), float(m.group(2))))
    return out


def is_abnormal(value: float, rule: str) -> bool:
    """Whether ``value`` is abnormal by a rule such as ``"<135|>145"``.

    >>> is_abnormal(133.0, "<135|>145"), is_abnormal(140.0, "<135|>145"), is_abnormal(6.5, ">=6.5")
    (True, False, True)
    """
    return any(_OPS[op](value, limit) for op, limit in _comparisons(rule))


def abnormal_mask(values: np.ndarray, rule: str) -> np.ndarray:
    """``is_abnormal`` over an array (missing values are not abnormal)."""
    v = np.asarray(values, dtype=float)
    out = np.zeros(len(v), dtype=bool)
    for op, limit in _comparisons(rule):
        with np.errstate(invalid="ignore"):
            out |= _OPS[op](v, limit)
    return out & ~np.isnan(v)


def rule_words(rule: str) -> str:
    """A rule in words: ``"<135|>145"`` reads "below 135 or above 145", ``">=6.5"`` reads "6.5 or above"."""
    parts = []
    for op, limit in _comparisons(rule):
        n = f"{limit:g}"
        parts.append(f"{n} or above" if op == ">=" else f"{_WORDS[op]} {n}")
    return " or ".join(parts)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def reason_text(info: Mapping, value) -> str | None:
    """The reason sentence for a member's ``value`` of a feature (a catalog entry as a dict or FeatureInfo),
    or None when that value is never a reason for high risk (absent flag, $0, a normal lab, a zero count).

    >>> reason_text({"kind": "flag", "reason": "heart failure"}, 0) is None
    True
    >>> reason_text({"kind": "number", "unit": "mmol/L", "reason": "sodium {value:g} mmol/L",
    ...              "abnormal": "<135|>145"}, 131.0)
    'sodium 131 mmol/L'
    >>> reason_text({"kind": "number", "unit": "count", "reason": "{value:.0f} emergency visits",
    ...              "reason_one": "1 emergency visit"}, 1)
    '1 emergency visit'
    """
    info = info.to_dict() if isinstance(info, FeatureInfo) else info
    if _missing(value):
        return None
    kind = info.get("kind", "number")
    template = info.get("reason") or "{value}"
    if kind == "flag":
        return template if value in (1, True, "1") else None
    if kind == "category":
        return _fill(template, value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _fill(template, value)
    if info.get("abnormal") and not is_abnormal(number, info["abnormal"]):
        return None
    if info.get("unit") in MONEY_OR_COUNT and number <= 0:
        return info.get("zero_reason") if number == 0 else None
    if number == 1 and info.get("reason_one"):
        return info["reason_one"]
    return _fill(template, value)


def _fill(template: str, value) -> str:
    try:
        return template.format(value=value)
    except (ValueError, TypeError):
        return template.format(value=str(value))


@cache
def labs() -> pd.DataFrame:
    """The labs read as features, with their LOINC codes, unit and abnormal rule (``valuesets/labs.csv``)."""
    df = codes.valueset("labs").set_index("lab")
    df["loinc"] = df["loinc"].str.split()
    for rule in df["abnormal"]:
        _comparisons(rule)  # a bad rule fails here, naming itself
    return df


def catalog_frame(infos: list[FeatureInfo]) -> pd.DataFrame:
    return pd.DataFrame([asdict(i) for i in infos])
