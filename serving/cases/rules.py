"""The rules a review case is worked by: who may decide what, what a denial needs, how far a deadline may be
extended, and how long an appeal may take. The decision deadlines themselves (72 hours expedited, 7
calendar days standard) are ``umrisk.serving.prioritize``'s, the one place they are written.

Sources: CMS-0057-F (89 FR 8758, 2024) for the 72-hour and 7-day decision time frames and the specific
reason for a denial; 42 CFR 422.568(b)(1) and 422.572(b)(1) (Medicare Advantage) and 42 CFR 438.210(d)
(Medicaid managed care) for an extension of at most 14 calendar days, taken before the time frame ends,
when more information is needed; 42 CFR 422.590(a) and (e) for reconsiderations (appeals) of a
pre-service request: 30 calendar days standard, 72 hours expedited, decided by someone other than the
person who made the decision appealed. Utilization review accreditation standards: a nurse reviewer may
approve, ask for information or escalate; only a physician reviewer may deny.
"""

from __future__ import annotations

REVIEWER_ROLES = ("nurse_reviewer", "physician_reviewer")
DECISIONS_BY_ROLE = {
    "nurse_reviewer": ("approved", "pended_for_information", "escalated"),
    "physician_reviewer": ("approved", "denied", "pended_for_information"),
}
EXTENSION_MAX_DAYS = 14  # in all, per case
APPEAL_HOURS = {"expedited": 72, "standard": 30 * 24}
NEEDS_REASON = ("denied", "pended_for_information", "escalated")
DENIAL_REASON_MIN_WORDS = 3  # a code, or a word or two, is not a reason in words


def specific(reason: str | None) -> bool:
    """Whether a denial's reason is a specific reason in words, not a code or one word.

    >>> specific("NMN"), specific("not necessary"), specific("No conservative therapy tried in the last 6 weeks")
    (False, False, True)
    """
    return reason is not None and len(reason.split()) >= DENIAL_REASON_MIN_WORDS
