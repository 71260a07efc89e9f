"""LinkedIn Conversions API (Marketing API, versioned ``/rest``).

    POST {origin}/rest/conversionEvents
    Authorization: Bearer <token>        LinkedIn-Version: 202604
    X-Restli-Protocol-Version: 2.0.0     X-RestLi-Method: BATCH_CREATE
    {"elements": [conversion event, ...]}

* **Auth**: a 3-legged OAuth member token with ``rw_conversions`` (plus ``r_ads`` for the
  connection test), granted by an ad-account member with a manager role. It lasts 60 days,
  so a static ``access_token`` stops working then (401: the destination pauses). Approved
  Marketing Developer Platform partners get *programmatic refresh tokens* (365 days from
  the member's consent; using one does not extend that): with ``client_id``,
  ``client_secret`` and ``refresh_token`` the dispatcher exchanges the refresh token at
  ``token_url`` (``POST``, form ``grant_type=refresh_token&refresh_token&client_id&
  client_secret``; answer ``{access_token, expires_in, refresh_token,
  refresh_token_expires_in}``), keeps the access token until shortly before ``expires_in``
  and, on a 401, renews it and sends once more before pausing. A destination needs either
  ``access_token`` or all three refresh keys; with both, the refresh flow wins and
  ``access_token`` is ignored (its expiry is unknown, so it could only cause a 401). The
  configured refresh token is kept even if an answer names another (LinkedIn keeps the
  same one for its fixed lifetime). Exchange errors ``{error, error_description}``:
  ``invalid_grant`` (refresh token expired or revoked) and other 4xx pause the destination
  naming the OAuth code, never a secret; 429 throttles; 5xx and network failures retry.
* **Version**: ``LinkedIn-Version`` is monthly and sunsets about a year after release;
  ``API_VERSION`` is the default, ``api_version`` overrides it. A sunset version answers 426:
  setup, not retried.
* **Limits**: 5,000 events per batch (RudderStack); ``conversionHappenedAt`` (epoch **ms**)
  within the last 90 days.
* **Rules, not names**: no event name goes on the wire; each event goes to a conversion rule
  (``urn:lla:llaPartnerConversion:{id}``) whose type is fixed at creation and which must be
  created with the Conversions API as its method. Chosen: only ``purchase`` is mapped, to
  ``conversion_id``, so nothing else is counted as a purchase. An ``events`` entry whose value
  is a rule ID sends that event to that rule (``events = {lead = "104567"}``); any other
  value sends it to ``conversion_id``.
* **Dedup**: ``eventId`` = our ``event_id``, the Insight Tag's ``event_id``; LinkedIn keeps
  the Insight Tag's copy. No window is documented (the 90 days bound it).
* **Matching**: ``userIds`` with ``SHA256_EMAIL`` (trimmed, lowercased, SHA-256 hex) and
  ``LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID`` (the raw ``li_fat_id``). An event with neither
  cannot match and is skipped. ``userInfo`` (first and last name, ``company_name`` and
  ``job_title`` from the event's data, ISO country) is *plaintext* on LinkedIn's side, so it
  goes only with ``send_user_info = "true"`` (raw PII stays in the edge by default), and
  only with both names, which LinkedIn requires together.
* **Money**: ``conversionValue.amount`` is a *string* (a number is a 422).
* **Answers**: batch 200 ``{"elements": [{"status": 201}, …]}`` with per-index statuses
  (failed indices are rejected, the rest delivered). 422 ``Index: N, ERROR :: /path ::
  reason`` and 400 ``…, indices [N]`` refuse the whole batch: a batch where only some events
  are named is split. 400 for a rule not made for the Conversions API, or a missing version,
  is setup; 401 (expired/revoked token) and 403 (no role, unknown rule) pause the
  destination; 429 and 5xx are retried.
* **Consent**: LinkedIn has no consent or limited-use field: GPC always skips the event.
* **Test**: LinkedIn has no test mode. The connection test reads the rule
  (``GET /rest/conversions/{id}?account=…``, when ``ad_account_id`` is set; it also checks
  the rule's method) or else the token's ad accounts (``GET /rest/adAccounts?q=search``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from edge.schema import StoredEvent

from . import oauth, pii
from .base import (
    DAY,
    Built,
    Credential,
    Destination,
    Kind,
    Limits,
    Option,
    PlatformRequest,
    PlatformResponse,
    TagSpec,
    Token,
    Verdict,
    generic_http_verdict,
)
from .oauth import REFRESH_KEYS  # all three, or access_token

API_VERSION = "202604"
PROTOCOL_VERSION = "2.0.0"
MAX_EVENTS = 5_000
FRESHNESS_SECONDS = 90 * DAY
RULE_URN = "urn:lla:llaPartnerConversion:{}"
ACCOUNT_URN = "urn:li:sponsoredAccount:{}"
EMAIL_ID, LI_FAT_ID = "SHA256_EMAIL", "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"
CONVERSIONS_API_METHOD = "CONVERSIONS_API"
NO_MATCH_KEY = "no li_fat_id or email to match on"
MAX_REASON = 200
# userInfo fields read from the event's other data keys (the schema has no such user fields).
USER_INFO_FROM_DATA = {"companyName": "company_name", "title": "job_title"}
TOKEN_URL = "https://www.linkedin.com/oauth/v2/accessToken"  # noqa: S105 - a URL
OAUTH_HINTS = {
    "invalid_grant": "the refresh token expired (365 days after the member's consent; "
    "refreshing does not extend it) or was revoked: authorise the app again and set the new "
    "refresh_token",
    "invalid_client": "client_id or client_secret is wrong (LinkedIn Developer Portal → your "
    "app → Auth)",
    "unauthorized_client": "this app may not use refresh tokens (programmatic refresh tokens "
    "are for approved Marketing Developer Platform partners)",
    "invalid_request": "LinkedIn refused the exchange as malformed: check client_id, "
    "client_secret and refresh_token",
}
_INDEX = re.compile(r"Index:\s*(\d+)")
_INDICES = re.compile(r"indices\s*\[([\d,\s]+)\]")
_OPAQUE = r"[A-Za-z0-9_\-.~+/=]{20,4096}"  # OAuth tokens: opaque, URL-safe characters

SPEC = TagSpec(
    name="linkedin",
    title="LinkedIn",
    api_version=API_VERSION,
    base_url="https://api.linkedin.com",
    docs_url="https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/conversions-api",
    credentials=(
        Credential(
            "access_token",
            "Access token",
            "a 3-legged OAuth access token with the rw_conversions scope (and r_ads for the "
            "connection test), from your LinkedIn developer app; it lasts 60 days and nothing "
            "refreshes it",
            pattern=_OPAQUE,
            secret=True,
            required=False,
        ),
        Credential(
            "client_id",
            "OAuth client ID",
            "your LinkedIn app's Client ID (LinkedIn Developer Portal → your app → Auth); "
            "with client_secret and refresh_token, access tokens are refreshed automatically "
            "and access_token is not needed",
            pattern=r"[A-Za-z0-9]{8,64}",
            required=False,
            example="86abcdef0g1h2i",
        ),
        Credential(
            "client_secret",
            "OAuth client secret",
            "your LinkedIn app's Primary Client Secret (LinkedIn Developer Portal → your app "
            "→ Auth)",
            pattern=r"[A-Za-z0-9_\-.~+/=]{12,512}",
            secret=True,
            required=False,
        ),
        Credential(
            "refresh_token",
            "Refresh token",
            "a programmatic refresh token from the member's OAuth consent (only for approved "
            "Marketing Developer Platform partners); it lasts 365 days from that consent and "
            "refreshing does not extend it",
            pattern=_OPAQUE,
            secret=True,
            required=False,
        ),
        Credential(
            "conversion_id",
            "Conversion rule ID",
            "the numeric ID of a conversion rule created with the Conversions API as data "
            "source (Campaign Manager → Analyze → Conversion tracking → the rule; the ID is "
            "in the URL)",
            pattern=r"\d{1,20}",
            example="104567",
        ),
        Credential(
            "ad_account_id",
            "Ad account ID",
            "the numeric ad account ID, e.g. 508123456 (Campaign Manager → the account; the "
            "number in the URL); used by the connection test",
            pattern=r"\d{1,20}",
            required=False,
            example="508123456",
        ),
    ),
    options=(
        Option("api_version", "a LinkedIn-Version month, YYYYMM, e.g. 202604", r"\d{6}"),
        Option(
            "send_user_info",
            '"true" also sends first/last name, company and title in plaintext (userInfo)',
            "true|false",
        ),
        Option(
            "token_url",
            f"the OAuth token endpoint refresh tokens are exchanged at (default {TOKEN_URL}); "
            "point it at a local server in tests",
            r"https?://\S+",
        ),
    ),
    limits=Limits(
        max_batch_events=MAX_EVENTS,
        max_batch_bytes=None,
        freshness_seconds=FRESHNESS_SECONDS,
        max_in_flight=4,
        timeout_seconds=10.0,
    ),
    consent=frozenset({"ad_storage", "ad_user_data"}),
    tcf_vendor_id=804,  # IAB TCF: the Global Vendor List ID
    tcf_purposes=frozenset({1, 7}),
    event_map={"purchase": "PURCHASE"},
    custom_events=False,
    dedup_key="eventId = event_id (the Insight Tag's event_id); the Insight Tag copy wins",
    click_ids=("li_fat_id",),
    test_mode="no test mode at LinkedIn; the connection test reads the conversion rule "
    "(GET /rest/conversions/{id}) or the token's ad accounts, and posts nothing",
    credential_sets=(("access_token",), REFRESH_KEYS),
)


def refreshes(destination: Destination) -> bool:
    """Whether the destination refreshes its tokens (then ``access_token`` is ignored)."""
    return all(destination.credentials.get(key) for key in REFRESH_KEYS)


def _token(destination: Destination) -> str:
    if refreshes(destination):
        return destination.bearer or ""  # the dispatcher always passes the refreshed token
    return destination.credentials["access_token"]


def _headers(destination: Destination) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {_token(destination)}",
        "LinkedIn-Version": destination.options.get("api_version", API_VERSION),
        "X-Restli-Protocol-Version": PROTOCOL_VERSION,
    }


def amount(value: float) -> str:
    """LinkedIn's string amount: ``59.8`` → ``"59.8"``, ``60.0`` → ``"60"``."""
    return format(value, ".6f").rstrip("0").rstrip(".")


def _email(event: StoredEvent) -> str | None:
    return next((e for e in (pii.email(v) for v in event.user.emails()) if e), None)


def skip_reason(event: StoredEvent, destination: Destination) -> str | None:
    """LinkedIn matches on li_fat_id or a hashed email only."""
    return None if event.ids.li_fat_id or _email(event) else NO_MATCH_KEY


def user_info(event: StoredEvent) -> dict[str, str] | None:
    person = event.user
    first, last = (person.first_name or "").strip(), (person.last_name or "").strip()
    if not (first and last):
        return None  # LinkedIn refuses userInfo without both names
    country = pii.country(person.country) if person.country else None
    fields = {"firstName": first, "lastName": last, "countryCode": (country or "").upper()}
    for field, key in USER_INFO_FROM_DATA.items():
        value = event.custom.get(key)
        fields[field] = value.strip() if isinstance(value, str) else ""
    return {k: v for k, v in fields.items() if v}


def element(event: StoredEvent, destination: Destination, rule: str) -> dict[str, Any]:
    email = _email(event)
    user_ids = [
        {"idType": id_type, "idValue": value}
        for id_type, value in ((EMAIL_ID, pii.hashed(email)), (LI_FAT_ID, event.ids.li_fat_id))
        if value
    ]
    user: dict[str, Any] = {"userIds": user_ids}
    if destination.options.get("send_user_info") == "true" and (info := user_info(event)):
        user["userInfo"] = info
    data = event.data
    fields: dict[str, Any] = {
        "conversion": RULE_URN.format(rule),
        "conversionHappenedAt": event.time * 1000,
        "conversionValue": {"currencyCode": data.currency.upper(), "amount": amount(data.value)}
        if data.value is not None and data.currency
        else None,
        "eventId": event.event_id,
        "user": user,
    }
    return {k: v for k, v in fields.items() if v is not None}


def rule_for(event: StoredEvent, destination: Destination) -> str | None:
    """The conversion rule ID an event goes to, or None when it is not sent."""
    name = destination.platform_event(SPEC, event.event)
    if name is None:
        return None
    return name if name.isdigit() else destination.credentials["conversion_id"]


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    url = f"{destination.base_url}/rest/conversionEvents"
    headers = {**_headers(destination), "X-RestLi-Method": "BATCH_CREATE"}
    built = []
    for start in range(0, len(events), MAX_EVENTS):
        elements, ids, rejected = [], [], {}
        for event in events[start : start + MAX_EVENTS]:
            rule = rule_for(event, destination)
            if rule is None:
                rejected[event.event_id] = f"unmapped event: {event.event}"
                continue
            if reason := skip_reason(event, destination):
                rejected[event.event_id] = reason
                continue
            elements.append(element(event, destination, rule))
            ids.append(event.event_id)
        request = (
            PlatformRequest("POST", url, headers, {"elements": elements}) if elements else None
        )
        built.append(Built(request, tuple(ids), rejected))
    return built


def _describe(body: Mapping[str, Any], status: int) -> str:
    code = body.get("code") or body.get("serviceErrorCode") or body.get("status") or status
    message = " ".join(str(body.get("message", "")).split())  # 422s come as several lines
    return f"linkedin {code}: {message}"[:MAX_REASON].rstrip(": ")


def _named_indices(message: str, count: int) -> dict[int, str]:
    """Indices LinkedIn names in a refused batch, each with its message lines."""
    named: dict[int, str] = {}
    for block in re.split(r"(?=Index:\s*\d+)", message):
        if match := _INDEX.match(block.strip()):
            named[int(match.group(1))] = " ".join(block.split())[:MAX_REASON]
    if match := _INDICES.search(message):
        head = message[: match.start()].rstrip(" ,")
        for raw in match.group(1).split(","):
            named.setdefault(int(raw), head[:MAX_REASON])
    return {i: text for i, text in named.items() if 0 <= i < count}


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    body = response.json()
    body = body if isinstance(body, dict) else {}
    reason = _describe(body, response.status)
    generic = generic_http_verdict(response)
    if generic is not None:
        return Verdict(generic.kind, f"{generic.reason}: {reason}", generic.retry_after)
    if 200 <= response.status < 300:
        rejected = {}
        for i, result in enumerate(body.get("elements") or []):
            status = result.get("status") if isinstance(result, dict) else None
            if isinstance(status, int) and status >= 400 and i < len(event_ids):
                error = result.get("error") if isinstance(result.get("error"), dict) else {}
                rejected[event_ids[i]] = _describe(error, status)
        return Verdict(Kind.DELIVERED, rejected=rejected)
    message = str(body.get("message", ""))
    if response.status == 426 or body.get("code") == "VERSION_MISSING":
        return Verdict(Kind.SETUP, f"{reason} (set api_version to a supported YYYYMM)")
    if CONVERSIONS_API_METHOD in message:
        return Verdict(Kind.SETUP, f"{reason} (the rule must use the Conversions API)")
    if response.status in (400, 422):
        named = {event_ids[i]: text for i, text in _named_indices(message, len(event_ids)).items()}
        if len(event_ids) <= 1 or set(named) == set(event_ids):
            return Verdict(Kind.REJECTED, reason, rejected=named)
        return Verdict(Kind.SPLIT, reason, rejected=named)
    if response.status == 404:
        return Verdict(Kind.SETUP, reason)
    return Verdict(Kind.RETRY, reason)


def probe(destination: Destination) -> PlatformRequest:
    """Read the conversion rule (or, without an ad account, the token's ad accounts)."""
    account = destination.credentials.get("ad_account_id")
    base = f"{destination.base_url}/rest"
    if account:
        # Rest.li 2.0 wants URNs in a query string percent-encoded: done here, explicitly.
        urn = quote(ACCOUNT_URN.format(account), safe="")
        url = f"{base}/conversions/{destination.credentials['conversion_id']}?account={urn}"
    else:
        url = f"{base}/adAccounts?q=search"
    return PlatformRequest("GET", url, _headers(destination))


def probe_verdict(response: PlatformResponse) -> Verdict:
    body = response.json()
    body = body if isinstance(body, dict) else {}
    if 200 <= response.status < 300:
        method = body.get("conversionMethod")
        if method and method != CONVERSIONS_API_METHOD:
            return Verdict(Kind.SETUP, f"the conversion rule's method is {method}, not CAPI")
        if body.get("enabled") is False:
            return Verdict(Kind.SETUP, "the conversion rule is disabled")
        return Verdict(Kind.DELIVERED)
    if response.status == 403:
        return Verdict(
            Kind.SETUP,
            f"{_describe(body, 403)} (the test needs the r_ads scope and a role on the ad "
            "account; the rule or account may not exist)",
        )
    return classify(response, ())


# -- OAuth ------------------------------------------------------------------------------------


def token_request(destination: Destination) -> PlatformRequest | None:
    """The refresh-token exchange, or None for a static ``access_token`` (nothing to ask)."""
    return oauth.refresh_request(destination, TOKEN_URL) if refreshes(destination) else None


def parse_token(response: PlatformResponse) -> Token:
    """The access token, or ``tags.oauth.TokenError`` naming LinkedIn's OAuth error code."""
    return oauth.read_token(response, "linkedin", OAUTH_HINTS)
