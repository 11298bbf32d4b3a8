"""Shapes of medical codes and the small vocabularies the importers share.

Codes are stored upper-case without dots, hyphens or spaces (ICD-9-CM ``25000``, ICD-10-CM ``E119``, NDC as
11 digits). A shape says whether a value *looks like* a code of a system; whether the code exists is for
value-set files to tell.

``race_ethnicity`` uses one small vocabulary across sources, that of the CMS RTI race code (Hispanic is a
category of its own): white, black, asian, native, pacific_islander, other, hispanic; null when unknown.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

# Regular expressions matched against the whole normalised value.
SHAPES: dict[str, str] = {
    "SNOMED": r"\d{6,18}",  # SNOMED CT identifier: 6 to 18 digits
    "RXNORM": r"\d{1,8}",  # RxNorm concept unique identifier (RXCUI)
    "LOINC": r"\d{1,7}-\d",  # LOINC: item number, hyphen, check digit
    "ICD9CM": r"\d{3,5}|V\d{2,4}|E\d{3,4}",
    "ICD10CM": r"[A-Z]\d[0-9A-Z][0-9A-Z]{0,4}",
    "ICD9PCS": r"\d{2,4}",
    "ICD10PCS": r"[0-9A-HJ-NP-Z]{7}",
    "CPT": r"\d{4}[0-9FTU]",  # CPT category I (5 digits), II (…F) and III (…T)
    "HCPCS": r"[A-Z0-9]\d{3}[A-Z0-9]",  # level I (CPT) and level II (letter + 4 digits), as in CMS HCPCS fields
    "NDC": r"\d{11}",
    "ATC": r"[A-Z](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?",
}

ICD10_START = pd.Timestamp("2015-10-01")
"""US claims switched from ICD-9-CM to ICD-10-CM/PCS on 1 October 2015."""

_SEPARATORS = re.compile(r"[.\s-]")


def on_distinct(values: pd.Series, func: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``func`` applied to the distinct values only and mapped back (codes and descriptions repeat a lot)."""
    positions, uniques = pd.factorize(values)
    out = np.full(len(values), None, dtype=object)
    if len(uniques):
        mapped = func(pd.Series(uniques, dtype="str")).to_numpy(dtype=object)
        out[positions >= 0] = mapped[positions[positions >= 0]]
    return pd.Series(out, index=values.index, dtype="str")


def normalise_code(values: pd.Series) -> pd.Series:
    """Strip, upper-case and drop dots, hyphens and spaces."""
    return on_distinct(values, lambda s: s.str.strip().str.upper().str.replace(_SEPARATORS, "", regex=True))


def has_shape(codes: pd.Series, system: str) -> pd.Series:
    """Whether each normalised code has the shape of ``system`` (False for empty)."""
    return codes.str.fullmatch(SHAPES[system]).fillna(False).astype(bool)


def ndc11(values: pd.Series) -> pd.Series:
    """NDCs as 11 digits (the HIPAA 5-4-2 form); None where the value is not an NDC.

    Hyphenated 4-4-2, 5-3-2 and 5-4-1 forms are padded segment by segment. An unhyphenated value of 9 or 10
    digits is taken as an 11-digit NDC that lost its leading zeros (as spreadsheets and numeric columns do).
    """
    s = values.str.strip()
    parts = s.str.fullmatch(r"\d{4,5}-\d{3,4}-\d{1,2}").fillna(False).astype(bool)
    split = s.where(parts).str.split("-", expand=True)
    padded = None
    if parts.any():
        padded = split[0].str.zfill(5) + split[1].str.zfill(4) + split[2].str.zfill(2)
    digits = s.str.fullmatch(r"\d{9,11}").fillna(False).astype(bool)
    out = s.str.zfill(11).where(digits)
    if padded is not None:
        out = out.where(~parts, padded)
    return out.where(digits | parts)


def classify_icd_diagnosis(codes: pd.Series, times: pd.Series) -> pd.Series:
    """ICD9CM or ICD10CM for each normalised code (None when neither shape fits).

    All-digit codes are ICD-9-CM; codes that fit only the ICD-10-CM shape are ICD-10-CM; codes that fit
    both (V and E codes such as ``V5861``) follow the date: ICD-9-CM before 1 October 2015, else ICD-10-CM.
    """
    icd9 = has_shape(codes, "ICD9CM")
    icd10 = has_shape(codes, "ICD10CM")
    before = (times < ICD10_START).fillna(False).to_numpy()
    system = np.select([icd9 & ~icd10, icd10 & ~icd9, icd9 & icd10 & before, icd9 & icd10],
                       ["ICD9CM", "ICD10CM", "ICD9CM", "ICD10CM"], default="")
    return pd.Series(system, index=codes.index).replace("", None)


def classify_procedure(codes: pd.Series) -> pd.Series:
    """CPT, HCPCS (level II), ICD10PCS, ICD9PCS or SNOMED for each normalised code (None otherwise).

    Seven characters with at least one letter are ICD-10-PCS; an all-digit code of 6 or more digits is
    read as SNOMED CT (the rare all-digit ICD-10-PCS code is therefore missed).
    """
    has_letter = codes.str.contains(r"[A-Z]", regex=True).fillna(False).astype(bool)
    conditions = [
        has_shape(codes, "CPT"),
        codes.str.fullmatch(r"[A-V]\d{4}").fillna(False).astype(bool),
        has_shape(codes, "ICD10PCS") & has_letter,
        has_shape(codes, "ICD9PCS"),
        has_shape(codes, "SNOMED"),
    ]
    system = np.select(conditions, ["CPT", "HCPCS", "ICD10PCS", "ICD9PCS", "SNOMED"], default="")
    return pd.Series(system, index=codes.index).replace("", None)


def line_of_business(names: pd.Series) -> pd.Series:
    """Line of business from payer or plan names by keyword; ``none`` for the uninsured.

    dual (or both Medicare and Medicaid) → dual, Medicare → medicare, Medicaid → medicaid; no insurance,
    uninsured or self-pay → ``none`` (no enrollment); an empty name or "unknown" → unknown; any other
    name (a private insurer) → commercial.
    """
    n = names.fillna("").astype("str").str.lower().str.strip()
    rules = [
        (n.str.contains(r"no[_ ]insurance|uninsured|self[ -]?pay"), "none"),
        (n.str.contains("dual") | (n.str.contains("medicare") & n.str.contains("medicaid")), "dual"),
        (n.str.contains("medicare"), "medicare"),
        (n.str.contains("medicaid"), "medicaid"),
        ((n == "") | n.str.fullmatch(r"unknown|other|none|n/?a"), "unknown"),
    ]
    out = pd.Series("commercial", index=names.index, dtype="object")
    for hit, value in reversed(rules):
        out = out.where(~hit.fillna(False).astype(bool), value)
    return out


def race_ethnicity(race: pd.Series, hispanic: pd.Series) -> pd.Series:
    """Combine a race value already in the shared vocabulary (or None) with a Hispanic flag."""
    return race.where(~hispanic.fillna(False).astype(bool), "hispanic")


# Drug classes by keyword in a medication's description, first match wins (combination products such as
# "Acetaminophen / Oxycodone" fall in the first listed class). Class names follow those of the synthetic
# generator (features/synthetic/data/drugs.csv: VA National Drug File classes in plain words). A heuristic
# for descriptions such as Synthea's RxNorm names, not a value set: unmatched drugs keep a null drug_class.
DRUG_CLASS_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("anticoagulant", r"warfarin|heparin|enoxaparin|apixaban|rivaroxaban|dabigatran|edoxaban"),
    ("insulin", r"insulin"),
    ("opioid", r"oxycodone|hydrocodone|fentanyl|morphine|tramadol|hydromorphone|codeine|methadone|"
               r"buprenorphine|meperidine|tapentadol"),
    ("cardiac_glycoside", r"digoxin"),
    ("antiplatelet", r"clopidogrel|prasugrel|ticagrelor"),
    ("biguanide", r"metformin"),
    ("sulfonylurea", r"glipizide|glyburide|glimepiride"),
    ("antidiabetic", r"sitagliptin|linagliptin|liraglutide|semaglutide|canagliflozin|empagliflozin|"
                     r"dapagliflozin|pioglitazone"),
    ("loop_diuretic", r"furosemide|torsemide|bumetanide"),
    ("thiazide_diuretic", r"hydrochlorothiazide|chlorthalidone"),
    ("aldosterone_antagonist", r"spironolactone|eplerenone"),
    ("ace_inhibitor", r"lisinopril|enalapril|ramipril|captopril|benazepril|quinapril"),
    ("arb", r"losartan|valsartan|irbesartan|olmesartan|candesartan|telmisartan"),
    ("beta_blocker", r"metoprolol|atenolol|carvedilol|propranolol|bisoprolol|nebivolol"),
    ("calcium_channel_blocker", r"amlodipine|verapamil|diltiazem|nifedipine"),
    ("nitrate", r"nitroglycerin|isosorbide"),
    ("statin", r"simvastatin|atorvastatin|rosuvastatin|pravastatin|lovastatin"),
    ("inhaled_corticosteroid_laba", r"(?:fluticasone|budesonide|mometasone).*(?:salmeterol|formoterol|vilanterol)"),
    ("inhaled_corticosteroid", r"(?:fluticasone|budesonide|beclomethasone|mometasone|ciclesonide)"
                               r".*(?:inhal|actuat|nebuli)"),
    ("corticosteroid", r"prednisone|prednisolone|methylprednisolone|hydrocortisone|dexamethasone"),
    ("short_acting_beta_agonist", r"albuterol|levalbuterol"),
    ("long_acting_beta_agonist", r"salmeterol|formoterol"),
    ("anticholinergic_bronchodilator", r"tiotropium|ipratropium"),
    ("ssri", r"sertraline|fluoxetine|citalopram|escitalopram|paroxetine"),
    ("cholinesterase_inhibitor", r"donepezil|rivastigmine|galantamine"),
    ("erythropoiesis_stimulating_agent", r"epoetin|darbepoetin"),
    ("antibiotic", r"amoxicillin|penicillin|cephalexin|cefuroxime|ceftriaxone|ciprofloxacin|levofloxacin|"
                   r"doxycycline|azithromycin|clarithromycin|nitrofurantoin|sulfamethoxazole|vancomycin"),
    ("nsaid", r"ibuprofen|naproxen|diclofenac|meloxicam|celecoxib"),
    ("analgesic", r"acetaminophen"),
)


def drug_class(descriptions: pd.Series) -> pd.Series:
    """The drug class of each description by ``DRUG_CLASS_KEYWORDS`` (None when nothing matches)."""
    return on_distinct(descriptions, _drug_class)


def _drug_class(descriptions: pd.Series) -> pd.Series:
    out = pd.Series(None, index=descriptions.index, dtype="str")
    for name, pattern in DRUG_CLASS_KEYWORDS:
        hit = descriptions.str.contains(pattern, case=False, regex=True).fillna(False).astype(bool)
        out = out.where(~(hit & out.isna()), name)
    return out
