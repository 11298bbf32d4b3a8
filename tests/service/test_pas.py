"""Da Vinci PAS intake: the public test kit's Bundles (tests/fixtures/pas-samples) parsed, queued and answered
with a pended ClaimResponse, never a decision; a malformed Bundle is an OperationOutcome naming the element."""

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.service import casedb
from tests.service.casedb import auth
from umrisk.serving import pas

# the fixtures of casedb, by name: the HTTP tests run on SQLite and on PostgreSQL
postgres_url, sqlite_url, case_url, case_store, workflow = (casedb.postgres_url, casedb.sqlite_url, casedb.case_url,
                                                            casedb.case_store, casedb.workflow)

SAMPLES = Path(__file__).parents[1] / "fixtures" / "pas-samples"
CONFORMANT = ("conformant_pas_bundle_v110.json", "conformant_pas_bundle_v110_multiple_items.json")


def sample(name: str = CONFORMANT[0]) -> dict:
    return json.loads((SAMPLES / name).read_text())


def level(bundle: dict, code: str | None) -> dict:
    b = copy.deepcopy(bundle)
    claim = b["entry"][0]["resource"]
    if code is None:
        claim["extension"] = [x for x in claim["extension"] if "levelOfService" not in x["url"]]
    else:
        claim["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = code
    return b


@pytest.mark.parametrize("name", CONFORMANT)
def test_the_test_kits_conformant_bundles_parse(name):
    r = pas.parse((SAMPLES / name).read_bytes())
    assert r.urgency == "expedited"  # levelOfServiceCode U
    assert {"code": "3", "system": "http://codesystem.x12.org/005010/1365"} in r.codes
    assert r.diagnoses == [{"code": "G89.4", "system": "http://hl7.org/fhir/sid/icd-10-cm"}]
    assert r.member_ids == ["12345678901"] and r.claim_identifier == "111099"


@pytest.mark.parametrize(("code", "urgency"), [("U", "expedited"), ("E", "standard"), (None, "standard")])
def test_urgency_from_the_level_of_service(code, urgency):
    r = pas.parse(level(sample(), code))
    assert r.urgency == urgency
    assert bool(r.notes) == (code is None)  # no level of service: said so, standard time frame


@pytest.mark.parametrize(("change", "path"), [
    (lambda b: b.update(entry=[]), "Bundle.entry"),
    (lambda b: b["entry"][0]["resource"].update(use="claim"), "Bundle.entry[0].resource.use"),
    (lambda b: b["entry"][0]["resource"]["item"][0].update(sequence="one"),
     "Bundle.entry[0].resource.item[0].sequence"),
    (lambda b: b["entry"][0]["resource"].update(patient={"reference": "Patient/nobody"}),
     "Bundle.entry[0].resource.patient"),
    (lambda b: b["entry"][4]["resource"].pop("identifier"), "Bundle.entry[4].resource.identifier"),
    (lambda b: b["entry"][0]["resource"]["extension"][0]["valueCodeableConcept"]["coding"][0].update(code="03"),
     "Bundle.entry[0].resource.extension[0].valueCodeableConcept"),
    (lambda b: b.update(type="transaction"), "Bundle.type"),
])
def test_a_malformed_bundle_names_the_element(change, path):
    b = sample()
    change(b)
    with pytest.raises(pas.PasError) as err:
        pas.parse(b)
    assert err.value.status == 422 and path in [p for p, _ in err.value.problems], err.value.problems


def test_the_test_kits_nonconformant_bundle_is_refused():
    with pytest.raises(pas.PasError) as err:
        pas.parse((SAMPLES / "nonconformant_pas_bundle_v110.json").read_bytes())
    outcome = pas.operation_outcome(err.value.problems)
    assert outcome["issue"][0]["expression"] == ["Bundle.entry"] and "Claim" in outcome["issue"][0]["diagnostics"]


def test_the_answer_is_queued_and_pended_never_a_decision():
    r = pas.parse(sample(CONFORMANT[1]))
    now = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC).replace(tzinfo=None)  # naive UTC, the store's convention
    b = pas.claim_response_bundle(r, {"request_id": "RQ1", "deadline": now + dt.timedelta(hours=72)}, now)
    Bundle.model_validate(b)
    cr = b["entry"][0]["resource"]
    assert cr["resourceType"] == "ClaimResponse" and cr["outcome"] == "queued" and cr["use"] == "preauthorization"
    assert cr["identifier"] == [{"system": pas.CASE_SYSTEM, "value": "RQ1"}]
    actions = [ext["valueCodeableConcept"]["coding"][0]["code"] for item in cr["item"] for a in item["adjudication"]
               for x in a["extension"] for ext in x["extension"]]
    assert actions == ["A4"] * len(r.claim["item"])  # every item pended; no A1 (approved) or A3 (denied)


# ------------------------------------------------------------------ over HTTP
def submit(w, bundle, who="nina"):
    body = bundle if isinstance(bundle, bytes) else json.dumps(bundle).encode()
    return w["client"].post("/v1/fhir/Claim/$submit", content=body,
                            headers={**auth(w["tokens"][who]), "Content-Type": "application/fhir+json"})


def test_a_submitted_bundle_is_in_the_queue_with_its_deadline(workflow):
    w = workflow
    r = submit(w, sample())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    cr = r.json()["entry"][0]["resource"]
    rid = cr["identifier"][0]["value"]
    queue = w["client"].get("/v1/review-queue", headers=auth(w["tokens"]["nina"])).json()["cases"]
    [case] = [c for c in queue if c["request_id"] == rid]
    assert case["urgency"] == "expedited" and case["status"] == "new" and case["assignee"] is None
    deadline = dt.datetime.fromisoformat(case["deadline"]) - dt.datetime.fromisoformat(case["received_time"])
    assert deadline == dt.timedelta(hours=72)
    assert not case["member_known"] and case["flags"] == ["unknown member: no scores"]  # not in the store
    assert all(risk["probability"] is None for risk in case["risks"].values())


def test_a_bundle_for_a_known_member_is_scored(workflow):
    w = workflow
    b = level(sample(), "E")
    b["entry"][4]["resource"]["identifier"][0]["value"] = w["members"][0]
    rid = submit(w, b).json()["entry"][0]["resource"]["identifier"][0]["value"]
    case = w["client"].get(f"/v1/review-requests/{rid}", headers=auth(w["tokens"]["nina"])).json()
    assert case["member_id"] == w["members"][0] and case["member_known"] and case["urgency"] == "standard"
    assert case["source"] == "pas" and case["history"]["events"][0]["action"] == "created"


@pytest.mark.parametrize(("body", "status", "path"), [
    (b"{not json", 400, "Bundle"),
    (json.dumps({"resourceType": "Patient"}).encode(), 422, "Bundle.resourceType"),
    ((SAMPLES / "nonconformant_pas_bundle_v110.json").read_bytes(), 422, "Bundle.entry"),
])
def test_a_malformed_bundle_is_an_operation_outcome(workflow, body, status, path):
    r = submit(workflow, body)
    assert r.status_code == status and r.json()["resourceType"] == "OperationOutcome"
    assert path in r.json()["issue"][0]["expression"]


def test_submitting_needs_a_role_that_files_requests(workflow):
    assert submit(workflow, sample(), who="carla").status_code == 403
    assert workflow["client"].post("/v1/fhir/Claim/$submit", json=sample()).status_code == 401
