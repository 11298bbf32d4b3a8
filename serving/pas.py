"""Da Vinci Prior Authorization Support (PAS) intake: a request Bundle in, a review request out, and the
ClaimResponse Bundle that says it is queued and pended, never decided.

The Bundle is parsed with ``fhir.resources``' FHIR R4B models (PAS 1.x and 2.x profile R4); then the PAS rules
this service relies on are checked, each problem named by its element path (``Bundle.entry[0].resource.use``):
the first entry is a Claim with ``use`` = ``preauthorization``, its patient is a Patient in the Bundle with an
identifier, and it has at least one item with a ``productOrService``.

- Urgency: the Claim's level-of-service extension (X12 1338: ``U`` urgent → expedited, 72 hours; ``E`` elective
  → standard, 7 days); absent, the standard time frame, said in the answer.
- Codes: each ``item.productOrService`` coding; the service type from X12 1365 service type codes
  (``valuesets/x12_1365_service_types.csv``), CPT or HCPCS codes as a procedure, else ``other``.
- Diagnoses: each ``diagnosis.diagnosisCodeableConcept`` coding.
- Member: the Patient's identifiers, the first one the history store knows; none known, the case is made
  without scores and flagged.

Sources: HL7 Da Vinci PAS STU 2 (profiles pas-request-bundle, profile-claim, profile-claimresponse; extensions
levelOfServiceCode, reviewAction, reviewActionCode); X12 005010 code lists 1338 (level of service) and 306
(action code: A4 pended).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
LEVEL_OF_SERVICE = (PAS + "extension-levelOfServiceCode", PAS + "extension-levelOfServiceType")
X12_1338 = {"U": "expedited", "E": "standard"}
X12_306 = "https://codesystem.x12.org/005010/306"
X12_1365 = "1365"
PROCEDURE_SYSTEMS = ("http://www.ama-assn.org/go/cpt", "urn:oid:2.16.840.1.113883.6.12",  # CPT
                     "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "urn:oid:2.16.840.1.113883.6.285",
                     "https://bluebutton.cms.gov/resources/codesystem/hcpcs")  # HCPCS
CASE_SYSTEM = "urn:umrisk:review-request"
VALUESETS = Path(__file__).parent / "valuesets"


class PasError(ValueError):
    """The Bundle cannot be taken in: ``problems`` are ``(element path, message)``; ``status`` 400 when the
    body is not JSON, 422 when it is JSON but not a PAS request Bundle this service can queue."""

    def __init__(self, problems: list[tuple[str, str]], status: int = 422):
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))
        self.problems, self.status = problems, status


@dataclass
class PasRequest:
    """What the service needs of a PAS request Bundle."""

    claim: dict  # the Claim as sent (for the response's references)
    urgency: str
    service_type: str
    codes: list[dict]
    diagnoses: list[dict]
    member_ids: list[str]  # the Patient's identifier values, in order
    requesting_provider: str | None
    claim_identifier: str | None
    notes: list[str] = field(default_factory=list)


@cache
def service_types() -> dict[str, str]:
    """X12 1365 service type code → the review_requests service type."""
    with (VALUESETS / "x12_1365_service_types.csv").open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return {r["code"]: r["service_type"] for r in rows}


def _path(loc: Sequence) -> str:
    """A pydantic error location as a FHIR element path: ``Bundle.entry[0].resource.item[1].sequence``."""
    out = "Bundle"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _codings(concept) -> list[dict]:
    if concept is None or not concept.coding:
        return []
    return [{"code": c.code, "system": c.system} for c in concept.coding if c.code]


def _reference(bundle: Bundle, ref: str | None) -> tuple[int, object] | None:
    """The entry a reference (``Patient/x`` or a full URL) points to: (index, resource)."""
    if not ref:
        return None
    for i, e in enumerate(bundle.entry or []):
        r = e.resource
        if r is None:
            continue
        local = f"{r.get_resource_type()}/{r.id}"
        if ref in (local, e.fullUrl) or (e.fullUrl and e.fullUrl.endswith("/" + ref)):
            return i, r
    return None


def parse(body: bytes | str | dict) -> PasRequest:
    """The review request in a PAS request Bundle; ``PasError`` naming each problem's element path."""
    if not isinstance(body, dict):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise PasError([("Bundle", f"not JSON ({err.__class__.__name__}): send a FHIR JSON Bundle")], 400) from None
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        found = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise PasError([("Bundle.resourceType", f"expected a Bundle, found {found!r}")])
    try:
        bundle = Bundle.model_validate(body)
    except ValidationError as err:
        raise PasError([(_path(e.get("loc", ())), str(e.get("msg", ""))) for e in err.errors()[:20]]) from None
    except (ValueError, TypeError) as err:  # fhir.resources' own checks (a resource type it does not know ...)
        raise PasError([("Bundle", str(err).splitlines()[0])]) from None
    problems: list[tuple[str, str]] = []
    if bundle.type != "collection":
        problems.append(("Bundle.type", f"a PAS request Bundle is a collection, found {bundle.type!r}"))
    entries = bundle.entry or []
    claim = entries[0].resource if entries else None
    if claim is None or claim.get_resource_type() != "Claim":
        found = "no entry" if not entries else (claim.get_resource_type() if claim is not None else "no resource")
        raise PasError(problems + [("Bundle.entry[0].resource" if entries else "Bundle.entry",
                                    f"the first entry of a PAS request Bundle must be a Claim (found {found})")])
    at = "Bundle.entry[0].resource"
    if claim.use != "preauthorization":
        problems.append((f"{at}.use", f"a prior authorization request has use 'preauthorization', found {claim.use!r}"))
    urgency, notes = "standard", []
    level = [x for x in claim.extension or [] if x.url in LEVEL_OF_SERVICE]
    if not level:
        notes.append("no levelOfServiceCode extension on the Claim: the standard time frame (7 days) applies")
    else:
        i = (claim.extension or []).index(level[0])
        codes = [c.code for c in (level[0].valueCodeableConcept.coding if level[0].valueCodeableConcept else [])
                 if c.system is None or "1338" in c.system]
        if not codes or codes[0] not in X12_1338:
            problems.append((f"{at}.extension[{i}].valueCodeableConcept", "level of service must be an X12 1338 code "
                             f"U (urgent) or E (elective), found {codes[0] if codes else 'no code'!r}"))
        else:
            urgency = X12_1338[codes[0]]
    items = claim.item or []
    if not items:
        problems.append((f"{at}.item", "a prior authorization request needs at least one item"))
    codes: list[dict] = []
    service_type = None
    for k, item in enumerate(items):
        got = _codings(item.productOrService)
        if not got:
            problems.append((f"{at}.item[{k}].productOrService", "needs a coding with a code"))
        for c in got:
            if c not in codes:
                codes.append(c)
            if service_type is None:
                system = c["system"] or ""
                if X12_1365 in system:
                    service_type = service_types().get(c["code"], "other")
                elif system in PROCEDURE_SYSTEMS:
                    service_type = "procedure"
    diagnoses = []
    for d in claim.diagnosis or []:
        for c in _codings(d.diagnosisCodeableConcept):
            if c not in diagnoses:
                diagnoses.append(c)
    patient_ref = claim.patient.reference if claim.patient else None
    found = _reference(bundle, patient_ref)
    member_ids: list[str] = []
    if found is None or found[1].get_resource_type() != "Patient":
        problems.append((f"{at}.patient", f"must reference a Patient entry of the Bundle (found {patient_ref!r})"))
    else:
        k, patient = found
        member_ids = [x.value for x in patient.identifier or [] if x.value]
        if not member_ids:
            problems.append((f"Bundle.entry[{k}].resource.identifier",
                             "the Patient needs an identifier (the member id) to match a member"))
    provider = None
    ref = claim.provider.reference if claim.provider else None
    prov = _reference(bundle, ref)
    if prov is not None:
        ids = [x.value for x in getattr(prov[1], "identifier", None) or [] if x.value]
        provider = f"{prov[1].get_resource_type()} {ids[0]}" if ids else ref
    elif ref:
        provider = ref
    if problems:
        raise PasError(problems)
    ident = next((x.value for x in claim.identifier or [] if x.value), None)
    return PasRequest(claim=body["entry"][0]["resource"], urgency=urgency, service_type=service_type or "other",
                      codes=codes, diagnoses=diagnoses, member_ids=member_ids,
                      requesting_provider=(provider or "")[:128] or None, claim_identifier=ident, notes=notes)


def match_member(request: PasRequest, known: Callable[[list[str]], Sequence[bool]]) -> tuple[str, bool]:
    """The member id to file the case under: the first identifier the store knows, else the first given
    (``False``: an unknown member, a case without scores)."""
    flags = list(known(request.member_ids))
    for mid, ok in zip(request.member_ids, flags, strict=True):
        if ok:
            return mid, True
    return request.member_ids[0], False


def operation_outcome(problems: list[tuple[str, str]]) -> dict:
    """An OperationOutcome with one error issue per problem, its element path in ``expression``."""
    return {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid" if path != "Bundle" else "structure", "diagnostics": message,
         "expression": [path]} for path, message in problems]}


def claim_response_bundle(request: PasRequest, case: dict, now: dt.datetime) -> dict:
    """The answer to a PAS request: a ClaimResponse with outcome ``queued`` and each item's review action
    pended (X12 306 ``A4``), identified by the case's request id. Never a decision."""
    claim = request.claim
    stamp = now.replace(microsecond=0).isoformat() + "Z"
    rid = case["request_id"]
    pended = {"url": PAS + "extension-reviewAction", "extension": [
        {"url": PAS + "extension-reviewActionCode",
         "valueCodeableConcept": {"coding": [{"system": X12_306, "code": "A4", "display": "Pended"}]}}]}
    response = {
        "resourceType": "ClaimResponse", "id": rid,
        "meta": {"profile": [PAS + "profile-claimresponse"]},
        "identifier": [{"system": CASE_SYSTEM, "value": rid}],
        "status": "active", "type": claim.get("type") or {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "preauthorization", "patient": claim.get("patient") or {"display": "unknown"},
        "created": stamp, "insurer": claim.get("insurer") or {"display": "the plan"},
        "requestor": claim.get("provider"),
        "request": ({"identifier": {"system": claim["identifier"][0].get("system"),
                                    "value": request.claim_identifier}}
                    if request.claim_identifier and claim.get("identifier") else {"display": "the Claim submitted"}),
        "outcome": "queued",
        "disposition": (f"Queued for clinical review as {rid}; decision due by {case['deadline'].isoformat()}Z "
                        f"({request.urgency})."),
        "item": [{"itemSequence": item.get("sequence", i + 1), "adjudication": [
            {"extension": [pended], "category": {"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}}]}
            for i, item in enumerate(claim.get("item") or [])],
    }
    if not response["requestor"]:
        del response["requestor"]
    bundle = {"resourceType": "Bundle", "meta": {"profile": [PAS + "profile-pas-response-bundle"]},
              "identifier": {"system": CASE_SYSTEM, "value": rid}, "type": "collection", "timestamp": stamp,
              "entry": [{"fullUrl": f"urn:umrisk:ClaimResponse/{rid}", "resource": response}]}
    Bundle.model_validate(bundle)  # the answer is a valid R4B Bundle, or this is a bug here
    return bundle
