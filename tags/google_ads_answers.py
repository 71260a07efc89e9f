"""Reading Google's answers: Data Manager and Google Ads API errors, and what they mean.

Turns a ``google.rpc.Status`` (ErrorInfo, BadRequest field violations, GoogleAdsFailure)
into ``Problem`` rows and those into a ``Verdict``: setup, throttled, retry, split or
rejected, and legacy partial failures into delivered rows with the refused ones named. The
rules are summed up under **Errors** in ``tags.google_ads``, which exposes ``classify`` and
``probe_verdict`` as the tag's own. Pure, like every tag module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import Kind, PlatformResponse, Verdict, generic_http_verdict

TOO_RECENT_WAIT = 6 * 3600.0
DAILY_QUOTA_WAIT = 3600.0
MINUTE_QUOTA_WAIT = 60.0
PROBE_ID = "capi-edge-connection-test"  # the probe's one event: its refusal is only a note
# Error reasons (Data Manager ErrorReason / ErrorInfo, Google Ads API error codes) by verdict.
SETUP_REASONS = frozenset(
    "PERMISSION_DENIED NOT_FOUND INVALID_DESTINATION INVALID_CONVERSION_ACTION_ID"
    " INVALID_CONVERSION_ACTION_TYPE OPERATING_ACCOUNT_LOGIN_ACCOUNT_MISMATCH NOT_ALLOWLISTED"
    " TERMS_AND_CONDITIONS_NOT_SIGNED SERVICE_DISABLED ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    " DESTINATION_ACCOUNT_NOT_ENABLED_ENHANCED_CONVERSIONS_FOR_LEADS"
    " DESTINATION_ACCOUNT_DATA_POLICY_PROHIBITS_ENHANCED_CONVERSIONS"
    " DESTINATION_ACCOUNT_ENHANCED_CONVERSIONS_TERMS_NOT_SIGNED INVALID_CUSTOMER_ID"
    " CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE NO_CONVERSION_ACTION_FOUND"
    " CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS".split()
)
SETUP_CATEGORIES = frozenset({"authenticationError", "authorizationError", "notAllowlistedError"})
THROTTLE_REASONS = frozenset(
    "RESOURCE_EXHAUSTED RESOURCE_TEMPORARILY_EXHAUSTED RATE_LIMIT_EXCEEDED".split()
)
TRANSIENT_REASONS = frozenset(
    "INTERNAL_ERROR DEADLINE_EXCEEDED TRANSIENT_ERROR CONCURRENT_MODIFICATION".split()
)
RETRY_LATER_REASONS = frozenset({"TOO_RECENT_EVENT", "TOO_RECENT_CONVERSION_ACTION"})
ALREADY_COUNTED = frozenset(  # legacy duplicates: the conversion is already in Google Ads
    "CLICK_CONVERSION_ALREADY_EXISTS ORDER_ID_ALREADY_IN_USE DUPLICATE_ORDER_ID"
    " DUPLICATE_CLICK_CONVERSION_IN_REQUEST".split()
)
HINTS = {
    "SERVICE_DISABLED": "enable the Data Manager API in the OAuth client's Cloud project",
    "ACCESS_TOKEN_SCOPE_INSUFFICIENT": "mint the refresh token with the "
    "https://www.googleapis.com/auth/datamanager scope",
    "CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE": "the Google Ads API upload is closed to this "
    'account: set api = "data_manager"',
    "OPERATING_ACCOUNT_LOGIN_ACCOUNT_MISMATCH": "login_customer_id must manage customer_id",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One error Google reported: a reason code, its text, and the event index if any."""

    code: str
    message: str = ""
    index: int | None = None
    field: str = ""
    category: str = ""

    def text(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"google_ads {self.code}: {self.message[:200]}{where}".rstrip(": ")


def problems(status: dict[str, Any]) -> list[Problem]:
    """ErrorInfo reasons, BadRequest field violations and GoogleAdsFailure errors."""
    found = []
    for detail in status.get("details") or []:
        if not isinstance(detail, dict):
            continue
        for violation in detail.get("fieldViolations") or []:
            field = str(violation.get("field", ""))
            at = re.match(r"events\[(\d+)\]", field)
            code = str(violation.get("reason") or "INVALID_ARGUMENT")
            message = str(violation.get("description", ""))
            found.append(Problem(code, message, int(at[1]) if at else None, field))
        for error in detail.get("errors") or []:
            category, code = next(iter((error.get("errorCode") or {"": ""}).items()))
            path = (error.get("location") or {}).get("fieldPathElements") or []
            index = next(
                (p.get("index") for p in path if p.get("fieldName") == "conversions"), None
            )
            field = ".".join(
                f"{p.get('fieldName')}[{p['index']}]" if "index" in p else str(p.get("fieldName"))
                for p in path
            )
            found.append(Problem(str(code), str(error.get("message", "")), index, field, category))
        if isinstance(detail.get("reason"), str):  # google.rpc.ErrorInfo
            found.append(Problem(detail["reason"], category="ErrorInfo"))
    return found


def _retry_delay(status: dict[str, Any]) -> float | None:
    """RetryInfo / quotaErrorDetails ``retryDelay``, else a wait chosen from the quota name."""
    text = json.dumps(status)
    if delay := re.search(r'"retryDelay": "(\d+(?:\.\d+)?)s"', text):
        return float(delay[1])
    if "PerDay" in text or "per day" in text.lower():
        return DAILY_QUOTA_WAIT
    return MINUTE_QUOTA_WAIT if "quota_limit" in text else None


def _rows(found: list[Problem], event_ids: Sequence[str]) -> dict[str, str]:
    rows: dict[str, str] = {}
    for problem in found:
        if problem.index is not None and 0 <= problem.index < len(event_ids):
            rows.setdefault(event_ids[problem.index], problem.text())
    return rows


def _decide(found: list[Problem], reason: str, status: dict[str, Any]) -> Verdict | None:
    """The verdict an error reason forces on the whole request, or None."""
    codes = {p.code for p in found}
    if codes & SETUP_REASONS or any(
        p.category in SETUP_CATEGORIES or p.field.startswith("destinations") for p in found
    ):
        return Verdict(Kind.SETUP, reason)
    if codes & THROTTLE_REASONS:
        return Verdict(Kind.THROTTLED, reason, _retry_delay(status))
    if codes & TRANSIENT_REASONS:
        return Verdict(Kind.RETRY, reason)
    if codes & RETRY_LATER_REASONS:
        return Verdict(Kind.RETRY, reason, TOO_RECENT_WAIT)
    return None


def _describe(status: dict[str, Any], found: list[Problem]) -> str:
    head = status.get("status") or f"code {status.get('code')}"
    codes = list(dict.fromkeys(p.code for p in found if p.code and p.code != head))[:3]
    label = f"{head} ({', '.join(codes)})" if codes else head
    reason = f"google_ads {label}: {str(status.get('message', ''))[:200]}"
    if located := next((p for p in found if p.field), None):
        reason += f"; {located.field}: {located.message[:120]}"
    if hint := next((HINTS[c] for c in codes if c in HINTS), None):
        reason += f" — {hint}"
    return reason


def _partial(status: dict[str, Any], event_ids: Sequence[str]) -> Verdict:
    """Legacy HTTP 200 with ``partialFailureError``: the indexed rows failed, not the rest."""
    found = [p for p in problems(status) if p.code not in ALREADY_COUNTED]
    if not found:
        return Verdict(Kind.DELIVERED)
    reason = _describe(status, found)
    forced = _decide(found, reason, status)
    if forced is not None:
        return forced
    if any(p.index is None for p in found):
        return Verdict(Kind.SPLIT if len(event_ids) > 1 else Kind.REJECTED, reason)
    rows = _rows(found, event_ids)
    return Verdict(Kind.DELIVERED, f"google_ads partial failure: {len(rows)} refused", None, rows)


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    body = response.json()
    if 200 <= response.status < 300:
        if isinstance(body, dict) and body.get("partialFailureError"):
            return _partial(body["partialFailureError"], event_ids)
        request_id = body.get("requestId") if isinstance(body, dict) else None
        return Verdict(Kind.DELIVERED, f"google_ads requestId {request_id}" if request_id else "")
    status = body.get("error") if isinstance(body, dict) else None
    generic = generic_http_verdict(response)
    if not isinstance(status, dict):
        return generic or Verdict(Kind.RETRY, f"http {response.status} without a Google error")
    found = problems(status)
    reason = _describe(status, found)
    if generic is not None and generic.kind is Kind.THROTTLED:
        return Verdict(Kind.THROTTLED, reason, generic.retry_after or _retry_delay(status))
    if generic is not None:
        return Verdict(generic.kind, reason, generic.retry_after)
    if response.status == 404:
        return Verdict(Kind.SETUP, reason)
    if response.status == 409:  # ABORTED: a concurrency conflict on Google's side
        return Verdict(Kind.RETRY, reason)
    forced = _decide(found, reason, status)
    if forced is not None:
        return forced
    # Fast fail: nothing was ingested. Named events are refused; the others must go again.
    rows = _rows(found, event_ids)
    if rows and "TOO_MANY_EVENTS" not in {p.code for p in found}:
        whole = set(rows) >= set(event_ids)
        return Verdict(Kind.REJECTED if whole else Kind.SPLIT, reason, None, rows)
    return Verdict(Kind.SPLIT if len(event_ids) > 1 else Kind.REJECTED, reason)


def probe_verdict(response: PlatformResponse) -> Verdict:
    """OK when Google validated the synthetic conversion; a data complaint about it is a note."""
    verdict = classify(response, (PROBE_ID,))
    if verdict.kind is not Kind.DELIVERED:
        return verdict
    note = verdict.rejected.get(PROBE_ID)
    return Verdict(
        Kind.DELIVERED,
        f"credentials work; the test row was refused: {note}"
        if note
        else "credentials work (validateOnly)",
    )
