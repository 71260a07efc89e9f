"""Google Ads conversions through the Data Manager API (v1); the Google Ads API as a fallback.

    POST {origin}/v1/events:ingest                       Authorization: Bearer <access token>
    {"destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": ...},
                       "loginAccount": {...}, "productDestinationId": "<conversion action>"}],
     "encoding": "HEX", "validateOnly": false, "events": [event, ...]}

* **Why Data Manager**: since 15 June 2026 the Google Ads API's ``UploadClickConversions``
  refuses new adopters (``CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE``). ``api = "legacy"``
  keeps ``POST {origin}/v25/customers/{id}:uploadClickConversions`` (``partialFailure``) for
  accounts that are already allowlisted; it sends no IP (a separate allowlist since Feb 2026).
* **Auth**: an OAuth refresh token (scope ``…/auth/datamanager``; legacy ``…/auth/adwords``)
  exchanged at ``token_url``; the access token travels as ``Authorization: Bearer``. Data
  Manager takes no ``developer-token`` or ``login-customer-id`` header: the accounts are in
  ``destinations``. Legacy sends ``login-customer-id`` and, when configured,
  ``developer-token`` (optional: Google ignores it since 9 Sept 2026).
* **Limits**: 2,000 events per request (the limits page; an error-enum comment says 10,000),
  10 user identifiers per event (legacy: 5, email and phone only), 300 requests a minute and
  100,000 a day per Cloud project. No byte limit is documented; chosen: 5 MB, half the usual
  Google front-end cap. One request per conversion action.
* **Freshness**: Google publishes no event age for Data Manager; chosen: 90 days, the longest
  click-through window an action can have. Timestamps are clamped to the receipt time,
  because Data Manager refuses future ones.
* **Dedup**: ``transactionId`` = ``data.order_id``, else ``event_id`` (legacy ``orderId``).
  A known ID on the same action restates that conversion instead of counting a second one,
  so a retry is harmless; legacy duplicates (``ORDER_ID_ALREADY_IN_USE``, …) read as delivered.
* **Identifiers**: one click ID, gclid > gbraid > wbraid (never two: the Ads API refuses
  ``GBRAID_WBRAID_BOTH_SET``; Data Manager states no rule). Enhanced-conversion identifiers,
  SHA-256 hex: email (Gmail/Googlemail without dots and ``+suffix``), phone E.164 with ``+``,
  and an address of hashed given/family name with plain region and postal code. An event
  with neither is skipped as ``"no click id"`` (Data Manager: ``NO_IDENTIFIERS_PROVIDED``).
  Legacy drops user identifiers next to a braid, as Google's samples do.
* **Consent**: ``ad_user_data`` / ``ad_personalization`` → ``adUserData`` /
  ``adPersonalization`` = ``CONSENT_GRANTED`` / ``CONSENT_DENIED``; a signal the site did not
  send is omitted (= unspecified). Legacy sets ``adUserData`` only (``GRANTED``/``DENIED``).
  With ``ad_user_data`` denied (only when the consent config lets such events through) no
  user data, IP or user agent is sent. The IP goes only for visitors geolocated outside the
  EEA, the UK and Switzerland, where Google Ads does not match on IP.
* **Errors**: Data Manager fails fast: one bad event refuses the whole request and nothing is
  ingested, so a 400 whose ``BadRequest.fieldViolations`` name ``events[i]`` is ``split``
  with those events in ``rejected`` (the rest must be resent); without an index, ``split``.
  401/403/404, account or action problems → setup; 429 ``RESOURCE_EXHAUSTED`` → throttled
  (a per-day quota waits an hour); 5xx, ``UNAVAILABLE``, ``INTERNAL`` → retry. Legacy answers
  200 with ``partialFailureError``: the rows it indexes are rejected, the rest delivered;
  ``TOO_RECENT_EVENT`` (click under 6 h old) retries the whole request in 6 h, where the rows
  already accepted come back as duplicates and count as delivered.
* **Test**: the connection test posts one synthetic event with ``validateOnly: true``:
  validated like a real call (scope, account access, action), never recorded.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from edge.schema import StoredEvent, User

from . import oauth
from .base import (
    DAY,
    Built,
    Credential,
    Destination,
    Limits,
    Option,
    PlatformRequest,
    PlatformResponse,
    TagSpec,
    Token,
)

# From the sibling modules; ``X as X`` re-exports: the registry, the dispatcher and the tests
# read every name as ``google_ads.<name>``.
from .google_ads_answers import ALREADY_COUNTED as ALREADY_COUNTED
from .google_ads_answers import DAILY_QUOTA_WAIT as DAILY_QUOTA_WAIT
from .google_ads_answers import HINTS as HINTS
from .google_ads_answers import MINUTE_QUOTA_WAIT as MINUTE_QUOTA_WAIT
from .google_ads_answers import PROBE_ID as PROBE_ID
from .google_ads_answers import RETRY_LATER_REASONS as RETRY_LATER_REASONS
from .google_ads_answers import SETUP_CATEGORIES as SETUP_CATEGORIES
from .google_ads_answers import SETUP_REASONS as SETUP_REASONS
from .google_ads_answers import THROTTLE_REASONS as THROTTLE_REASONS
from .google_ads_answers import TOO_RECENT_WAIT as TOO_RECENT_WAIT
from .google_ads_answers import TRANSIENT_REASONS as TRANSIENT_REASONS
from .google_ads_answers import Problem as Problem
from .google_ads_answers import classify as classify
from .google_ads_answers import probe_verdict as probe_verdict
from .google_ads_answers import problems as problems
from .google_ads_identifiers import CLICK_IDS as CLICK_IDS
from .google_ads_identifiers import GMAIL as GMAIL
from .google_ads_identifiers import NAME_PREFIXES as NAME_PREFIXES
from .google_ads_identifiers import NAME_SUFFIXES as NAME_SUFFIXES
from .google_ads_identifiers import NO_CLICK_ID as NO_CLICK_ID
from .google_ads_identifiers import click_id as click_id
from .google_ads_identifiers import google_email as google_email
from .google_ads_identifiers import google_name as google_name
from .google_ads_identifiers import identifiers as identifiers
from .google_ads_identifiers import shares_user_data
from .google_ads_identifiers import skip_reason as skip_reason

API_VERSION = "v1"
LEGACY_API_VERSION = "v25"
ORIGIN = "https://datamanager.googleapis.com"
LEGACY_ORIGIN = "https://googleads.googleapis.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
INGEST_PATH = f"/{API_VERSION}/events:ingest"
MAX_EVENTS = 2_000
MAX_BATCH_BYTES = 5_000_000
MAX_IDENTIFIERS = 10
LEGACY_MAX_IDENTIFIERS = 5
FRESHNESS_SECONDS = 90 * DAY
DEFAULT_ACTION = "conversion_action_id"  # event map value: the configured conversion action
NO_IP_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"
    " IS LI NO GB CH".split()
)
CONSENT = {"granted": "CONSENT_GRANTED", "denied": "CONSENT_DENIED"}
LEGACY_CONSENT = {"granted": "GRANTED", "denied": "DENIED"}
PROBE_EMAIL = "connection-test@capi-edge.invalid"
OAUTH_HINTS = {
    "invalid_grant": "the refresh token expired, was revoked or belongs to another client",
    "invalid_client": "client_id or client_secret is wrong",
    "unauthorized_client": "this OAuth client may not use refresh tokens",
    "invalid_scope": "the refresh token lacks the scope this API needs",
}
_ID = r"\d{3}-?\d{3}-?\d{4}"
_ID_HINT = "10 digits, shown as 123-456-7890 at the top of the Google Ads UI"

SPEC = TagSpec(
    name="google_ads",
    title="Google Ads",
    api_version=API_VERSION,
    base_url=ORIGIN,
    docs_url="https://developers.google.com/data-manager/api/devguides/events/send-events",
    credentials=(
        Credential(
            "customer_id",
            "Customer ID",
            f"the Google Ads account that owns the conversion action: {_ID_HINT}",
            pattern=_ID,
            example="123-456-7890",
        ),
        Credential(
            "conversion_action_id",
            "Conversion action ID",
            "the conversion action's numeric ID (Goals → Conversions → Summary → open the "
            "action: the ctId= number in the page URL); an import-from-clicks action, or the "
            "Google tag's own Website action for server copies of tag conversions",
            pattern=r"[1-9]\d{0,18}",
            example="987654321",
        ),
        Credential(
            "client_id",
            "OAuth client ID",
            "the OAuth client ID ending .apps.googleusercontent.com (Google Cloud console → "
            "APIs & Services → Credentials, in the project with the Data Manager API enabled)",
            pattern=r"\d+-[0-9a-z]+\.apps\.googleusercontent\.com",
            example="123456789012-abc123def456.apps.googleusercontent.com",
        ),
        Credential(
            "client_secret",
            "OAuth client secret",
            "the OAuth client's secret (same Credentials page; recent ones start GOCSPX-)",
            pattern=r"[A-Za-z0-9_\-]{20,100}",
            secret=True,
        ),
        Credential(
            "refresh_token",
            "OAuth refresh token",
            "a refresh token minted for that client, with the …/auth/datamanager scope "
            "(legacy: …/auth/adwords), by a Google user with access to the account; it "
            "usually starts 1//",
            pattern=r"[A-Za-z0-9_\-./]{20,1024}",
            secret=True,
        ),
        Credential(
            "login_customer_id",
            "Login (manager) customer ID",
            f"the manager account the Google user reaches the account through: {_ID_HINT}; "
            "leave it out when the user belongs to the account itself",
            pattern=_ID,
            required=False,
            example="111-222-3333",
        ),
    ),
    options=(
        Option(
            "api",
            '"data_manager" (default) or "legacy" (Google Ads API upload, for '
            "accounts already allowlisted)",
            "data_manager|legacy",
        ),
        Option("token_url", f"the OAuth token endpoint (default {TOKEN_URL})", r"https?://\S+"),
        Option(
            "developer_token",
            "legacy only: the 22-character developer token (Google Ads "
            "→ Tools → API Center); optional, Google ignores it since Sept 2026",
            r"[A-Za-z0-9_\-]{22}",
            secret=True,
        ),
        Option(
            "legacy_api_version",
            f"legacy only: a Google Ads API version such as {LEGACY_API_VERSION}",
            r"v\d{2}",
        ),
    ),
    limits=Limits(
        max_batch_events=MAX_EVENTS,
        max_batch_bytes=MAX_BATCH_BYTES,
        freshness_seconds=FRESHNESS_SECONDS,
        max_in_flight=4,
        timeout_seconds=30.0,
    ),
    consent=frozenset({"ad_storage", "ad_user_data"}),
    tcf_vendor_id=755,  # IAB TCF: the Global Vendor List ID
    tcf_purposes=frozenset({1, 7}),
    event_map={"purchase": DEFAULT_ACTION, "lead": DEFAULT_ACTION},
    custom_events=False,
    dedup_key="transactionId (legacy orderId) = data.order_id, else event_id, per conversion "
    "action: a repeat restates the same conversion",
    click_ids=CLICK_IDS,
    test_mode="the connection test posts one synthetic event with validateOnly: true "
    "(validated, never recorded); there is no test-event view",
)


# -- payloads ---------------------------------------------------------------------------------


def _legacy(destination: Destination) -> bool:
    return destination.options.get("api") == "legacy"


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _timestamp(event: StoredEvent) -> int:
    return min(event.time, int(event.received_at)) if event.received_at else event.time


def _utc(seconds: int, legacy: bool = False) -> str:
    """RFC 3339 for Data Manager; ``yyyy-mm-dd hh:mm:ss+00:00`` for the Google Ads API."""
    layout = "%Y-%m-%d %H:%M:%S+00:00" if legacy else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.fromtimestamp(seconds, UTC).strftime(layout)


def _consent(event: StoredEvent, values: dict[str, str], personalization: bool) -> dict[str, str]:
    fields = {"adUserData": values.get(event.consent.ad_user_data or "")}
    if personalization:
        fields["adPersonalization"] = values.get(event.consent.ad_personalization or "")
    return {k: v for k, v in fields.items() if v}


def _action(event: StoredEvent, destination: Destination) -> tuple[str | None, str | None]:
    """(conversion action ID, None) or (None, why the event cannot be sent)."""
    name = destination.platform_event(SPEC, event.event)
    if name is None:
        return None, f"unmapped event: {event.event}"
    if name == DEFAULT_ACTION:
        return destination.credentials["conversion_action_id"], None
    if re.fullmatch(r"[1-9]\d{0,18}", name):
        return name, None
    return None, f'events.{event.event} must be "{DEFAULT_ACTION}" or a conversion action ID'


def _account(account_id: str) -> dict[str, str]:
    return {"accountType": "GOOGLE_ADS", "accountId": _digits(account_id)}


def _destination(destination: Destination, action: str) -> dict[str, Any]:
    found: dict[str, Any] = {"operatingAccount": _account(destination.credentials["customer_id"])}
    if login := destination.credentials.get("login_customer_id"):
        found["loginAccount"] = _account(login)
    found["productDestinationId"] = action
    return found


def event_payload(event: StoredEvent, destination: Destination) -> dict[str, Any]:
    """One Data Manager ``Event``."""
    data, client, share = event.data, event.client, shares_user_data(event)
    users = {"email": "emailAddress", "phone": "phoneNumber", "address": "address"}
    found = identifiers(event, destination) if share else []
    user_ids = [{users[kind]: value} for kind, value in found][:MAX_IDENTIFIERS]
    country = (client.country or "").upper()
    device = {
        "userAgent": client.user_agent,
        "ipAddress": client.ip if country and country not in NO_IP_COUNTRIES else None,
    }
    click = click_id(event)
    payload: dict[str, Any] = {
        "transactionId": data.order_id or event.event_id,
        "eventTimestamp": _utc(_timestamp(event)),
        "eventSource": "WEB",
        "conversionValue": data.value,
        "currency": data.currency.upper() if data.currency else None,
        "adIdentifiers": dict([click]) if click else None,
        "eventDeviceInfo": {k: v for k, v in device.items() if v} if share else None,
        "userData": {"userIdentifiers": user_ids} if user_ids else None,
        "consent": _consent(event, CONSENT, personalization=True),
    }
    return {k: v for k, v in payload.items() if v is not None and v != {}}


def legacy_conversion(event: StoredEvent, destination: Destination, action: str) -> dict[str, Any]:
    """One Google Ads API ``ClickConversion``."""
    data, click = event.data, click_id(event)
    users = {"email": "hashedEmail", "phone": "hashedPhoneNumber"}
    braid = click is not None and click[0] != "gclid"
    found = identifiers(event, destination) if shares_user_data(event) and not braid else []
    customer = _digits(destination.credentials["customer_id"])
    payload: dict[str, Any] = {
        **(dict([click]) if click else {}),
        "conversionAction": f"customers/{customer}/conversionActions/{action}",
        "conversionDateTime": _utc(_timestamp(event), legacy=True),
        "conversionValue": data.value,
        "currencyCode": data.currency.upper() if data.currency else None,
        "orderId": data.order_id or event.event_id,
        "userIdentifiers": [
            {"userIdentifierSource": "FIRST_PARTY", users[kind]: value}
            for kind, value in found
            if kind in users
        ][:LEGACY_MAX_IDENTIFIERS],
        "consent": _consent(event, LEGACY_CONSENT, personalization=False),
    }
    return {k: v for k, v in payload.items() if v is not None and v not in ({}, [])}


def _request(destination: Destination, body: dict[str, Any]) -> PlatformRequest:
    headers = {"Authorization": f"Bearer {destination.bearer}"} if destination.bearer else {}
    if not _legacy(destination):
        return PlatformRequest("POST", destination.base_url + INGEST_PATH, headers, body)
    if token := destination.options.get("developer_token"):
        headers["developer-token"] = token
    if login := destination.credentials.get("login_customer_id"):
        headers["login-customer-id"] = _digits(login)
    # A configured base_url (a local server) serves both paths; otherwise the Ads API's origin.
    origin = LEGACY_ORIGIN if destination.base_url == ORIGIN else destination.base_url
    version = destination.options.get("legacy_api_version", LEGACY_API_VERSION)
    customer = _digits(destination.credentials["customer_id"])
    return PlatformRequest(
        "POST", f"{origin}/{version}/customers/{customer}:uploadClickConversions", headers, body
    )


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _chunks(items: list[tuple[str, Any]], empty: dict[str, Any]) -> Iterator[list[Any]]:
    """Runs of at most MAX_EVENTS items whose body stays under MAX_BATCH_BYTES."""
    base = _size(empty)
    chunk: list[tuple[str, Any]] = []
    size = base
    for item in items:
        grows = _size(item[1]) + 1
        if chunk and (len(chunk) >= MAX_EVENTS or size + grows > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], base
        chunk.append(item)
        size += grows
    if chunk:
        yield chunk


def _envelope(destination: Destination, action: str, validate: bool) -> tuple[dict[str, Any], str]:
    """The request body without its events, and the key the events go under."""
    if _legacy(destination):
        return {"partialFailure": True, "validateOnly": validate}, "conversions"
    found = {
        "destinations": [_destination(destination, action)],
        "encoding": "HEX",
        "validateOnly": validate,
    }
    return found, "events"


def _payload(event: StoredEvent, destination: Destination, action: str) -> dict[str, Any]:
    if _legacy(destination):
        return legacy_conversion(event, destination, action)
    return event_payload(event, destination)


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    groups: dict[str, list[tuple[str, Any]]] = {}  # conversion action -> (event_id, payload)
    rejected: dict[str, str] = {}
    for event in events:
        action, problem = _action(event, destination)
        if action is None:
            rejected[event.event_id] = problem or "unmapped"
        elif skip_reason(event, destination):
            rejected[event.event_id] = f"{NO_CLICK_ID} and no user identifiers"
        else:
            payload = _payload(event, destination, action)
            groups.setdefault(action, []).append((event.event_id, payload))
    if _legacy(destination) and groups:  # one customer per request, the action is per row
        groups = {"": [item for items in groups.values() for item in items]}
    built = [Built(None, (), rejected)] if rejected else []
    for action, items in groups.items():
        envelope, key = _envelope(destination, action, validate=False)
        for chunk in _chunks(items, {**envelope, key: []}):
            body = {**envelope, key: [payload for _, payload in chunk]}
            built.append(Built(_request(destination, body), tuple(i for i, _ in chunk)))
    return built


def probe(destination: Destination) -> PlatformRequest:
    """One synthetic conversion with ``validateOnly: true``: checked, never recorded."""
    now = int(time.time())  # the one clock read: Google refuses a stale or future timestamp
    test = StoredEvent("lead", PROBE_ID, now, now, user=User(email=PROBE_EMAIL))
    action = destination.credentials["conversion_action_id"]
    envelope, key = _envelope(destination, action, validate=True)
    return _request(destination, {**envelope, key: [_payload(test, destination, action)]})


# -- OAuth ------------------------------------------------------------------------------------


def token_request(destination: Destination) -> PlatformRequest:
    return oauth.refresh_request(destination, TOKEN_URL)


def parse_token(response: PlatformResponse) -> Token:
    """The access token, or ``tags.oauth.TokenError`` naming the OAuth error code."""
    return oauth.read_token(response, "google", OAUTH_HINTS)
