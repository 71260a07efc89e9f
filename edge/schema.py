"""The canonical event: "one schema in" (documented in docs/schema.md).

Two families of typed structs live here:

* wire structs (``EventIn`` and friends) that a request body is decoded into, with limits
  that reject oversized or malformed fields with the JSON path of the offending field;
* ``StoredEvent``, the enriched event the outbox keeps and every tag reads.

Decoding never echoes values back: an error names the field and the rule it broke.
"""

from __future__ import annotations

import random
import re
import time as _time
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from .errors import InvalidEvent

MAX_EVENTS_PER_REQUEST = 100
MAX_FUTURE_SKEW_SECONDS = 600  # a clock a little ahead is fine; an event from next week is not
MIN_EVENT_TIME = 946_684_800  # 2000-01-01: anything earlier is a unit mistake (ms vs s)
STANDARD_EVENTS = frozenset(
    {
        "page_view",
        "view_content",
        "search",
        "add_to_cart",
        "add_to_wishlist",
        "initiate_checkout",
        "add_payment_info",
        "purchase",
        "lead",
        "complete_registration",
        "subscribe",
        "start_trial",
        "contact",
    }
)

ShortText = Annotated[str, Meta(max_length=256)]
LongText = Annotated[str, Meta(max_length=2048)]
EventName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
EventId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Currency = Annotated[str, Meta(pattern=r"^[A-Za-z]{3}$")]
Money = Annotated[float, Meta(ge=0, le=1e12)]
ConsentValue = Literal["granted", "denied"]
# Click IDs and browser IDs end up in Set-Cookie headers and platform payloads: a strict
# charset keeps anything from being injected there.
IdValue = Annotated[str, Meta(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9._~\-]+$")]


class Page(Struct, forbid_unknown_fields=True, omit_defaults=True):
    url: LongText | None = None
    referrer: LongText | None = None
    title: ShortText | None = None


class User(Struct, forbid_unknown_fields=True, omit_defaults=True):
    email: ShortText | list[ShortText] | None = None
    phone: ShortText | list[ShortText] | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    city: ShortText | None = None
    state: ShortText | None = None
    zip: ShortText | None = None
    country: ShortText | None = None
    date_of_birth: ShortText | None = None
    gender: ShortText | None = None
    external_id: ShortText | None = None

    def emails(self) -> list[str]:
        return _as_list(self.email)

    def phones(self) -> list[str]:
        return _as_list(self.phone)


class Content(Struct, forbid_unknown_fields=True, omit_defaults=True):
    id: ShortText | None = None
    quantity: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    price: Money | None = None
    name: ShortText | None = None
    category: ShortText | None = None
    brand: ShortText | None = None


class Data(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Known commerce fields; anything else a site sends is kept in ``StoredEvent.custom``."""

    value: Money | None = None
    currency: Currency | None = None
    order_id: ShortText | None = None
    contents: Annotated[list[Content], Meta(max_length=200)] | None = None
    search: ShortText | None = None
    content_type: ShortText | None = None
    content_name: ShortText | None = None
    content_category: ShortText | None = None
    num_items: Annotated[int, Meta(ge=0)] | None = None
    status: ShortText | None = None
    predicted_ltv: Money | None = None


class Consent(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Google Consent Mode v2 signals. ``None`` means the site did not say."""

    ad_storage: ConsentValue | None = None
    analytics_storage: ConsentValue | None = None
    ad_user_data: ConsentValue | None = None
    ad_personalization: ConsentValue | None = None


class Ids(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Click IDs and browser IDs. Browsers bring them as cookies; backends in ``ids``."""

    fbc: IdValue | None = None
    fbp: IdValue | None = None
    fbclid: IdValue | None = None
    ttp: IdValue | None = None
    ttclid: IdValue | None = None
    gclid: IdValue | None = None
    gbraid: IdValue | None = None
    wbraid: IdValue | None = None
    dclid: IdValue | None = None
    ga_client_id: IdValue | None = None
    ga_session_id: IdValue | None = None
    epik: IdValue | None = None
    sccid: IdValue | None = None
    scid: IdValue | None = None
    li_fat_id: IdValue | None = None
    rdt_cid: IdValue | None = None
    rdt_uuid: IdValue | None = None
    awc: Annotated[str, Meta(max_length=512, pattern=r"^[A-Za-z0-9._~,\-]+$")] | None = None
    tblci: IdValue | None = None
    ob_click_id: IdValue | None = None
    msclkid: IdValue | None = None
    crto_mapped_user_id: IdValue | None = None  # Criteo's GUM ID, from its own cookie
    crto_is_user_optout: IdValue | None = None


PIXELS = Literal["meta", "tiktok", "pinterest", "snapchat", "reddit", "google", "linkedin"]


class EventIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One event as a browser (``/collect``) or a backend (``/v1/events``) sends it."""

    event: EventName
    event_id: EventId | None = None
    time: Annotated[float, Meta(ge=0)] | None = None
    page: Page | None = None
    user: User | None = None
    data: dict[str, Any] | None = None
    consent: Consent | None = None
    gpc: bool | None = None
    tcf: Annotated[str, Meta(max_length=4096)] | None = None
    pixels: Annotated[list[PIXELS], Meta(max_length=16)] | None = None
    # Only trusted callers (``/v1/events`` with an API key) may speak for the visitor:
    ids: Ids | None = None
    ip: Annotated[str, Meta(max_length=45)] | None = None
    user_agent: Annotated[str, Meta(max_length=1024)] | None = None


class _EventWithKnownData(EventIn, forbid_unknown_fields=True, omit_defaults=True):
    """An ``EventIn`` whose ``data`` has only the known commerce fields, decoded and validated
    with the rest of the body (``decode_events``)."""

    data: Data | None = None  # type: ignore[assignment]


class Batch(Struct, forbid_unknown_fields=True):
    events: Annotated[list[EventIn], Meta(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)]


class Client(Struct, omit_defaults=True):
    """What the edge learned about the visitor's browser from the request."""

    # The full address goes only to consented destinations: the store keeps it beside the
    # event while deliveries are pending, never in the stored body (``ip_truncated`` is).
    ip: str | None = None
    ip_truncated: str | None = None  # /24 (IPv4) or /48 (IPv6): what stays for the record
    user_agent: str | None = None
    is_bot: bool = False
    country: str | None = None  # ISO 3166-1 alpha-2, from [geo]
    region: str | None = None  # ISO 3166-2 subdivision ("US-CA"), from [geo]


Source = Literal["browser", "server"]


class StoredEvent(Struct, omit_defaults=True):
    """The enriched event the outbox keeps and every tag reads (never mutated after storing)."""

    event: str
    event_id: str
    time: int
    received_at: float
    source: Source = "browser"
    page: Page = msgspec.field(default_factory=Page)
    user: User = msgspec.field(default_factory=User)
    data: Data = msgspec.field(default_factory=Data)
    custom: dict[str, Any] = msgspec.field(default_factory=dict)
    consent: Consent = msgspec.field(default_factory=Consent)
    gpc: bool = False
    tcf: str | None = None
    ids: Ids = msgspec.field(default_factory=Ids)
    client: Client = msgspec.field(default_factory=Client)
    pixels: list[str] = msgspec.field(default_factory=list)


_DATA_FIELDS = frozenset(Data.__struct_fields__)
# A version-4 UUID: version 4 (bits 76-79) and the RFC 4122 variant (bits 62-63), the rest random
_UUID_RANDOM_BITS = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_V4_BITS = (0x4000 << 64) | (0x8000 << 48)
_PATH_IN_ERROR = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `(?P<name>[^`]+)`")
_decoder = msgspec.json.Decoder()
_known_data_decoder = msgspec.json.Decoder(_EventWithKnownData)
_stored_encoder = msgspec.json.Encoder()
_stored_decoder = msgspec.json.Decoder(StoredEvent)


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _invalid(err: msgspec.ValidationError | msgspec.DecodeError, prefix: str) -> InvalidEvent:
    """Turn msgspec's message into ours, keeping its field path (values are never included)."""
    message = str(err)
    match = _PATH_IN_ERROR.search(message)
    path = prefix + (match.group("path") if match else "")
    rule = _PATH_IN_ERROR.sub("", message)
    named = _NAMED_FIELD.search(rule)
    if named:  # "Object contains unknown field `x`": the field itself is the one to name
        path = f"{path}.{named.group('name')}"
    return InvalidEvent(f"{path}: {rule}", field=path)


def decode_events(body: bytes) -> list[EventIn]:
    """Decode one event or ``{"events": [...]}`` into wire structs, or raise InvalidEvent."""
    try:
        # Most bodies are one valid event with only known ``data`` fields: decoded straight
        # into the structs, they are what the steps below (and split_data) make of them.
        # Anything else (a batch, custom properties, an error) takes those steps, which
        # also word the error.
        return [_known_data_decoder.decode(body)]
    except msgspec.DecodeError:
        return decode_events_generally(body)


def decode_events_generally(body: bytes) -> list[EventIn]:
    """``decode_events`` without its shortcut: JSON first, then the structs."""
    try:
        raw = _decoder.decode(body)
    except msgspec.DecodeError as err:
        raise InvalidEvent(f"$: body is not valid JSON ({err})", field="$") from None
    if isinstance(raw, dict) and "events" in raw:
        try:
            return msgspec.convert(raw, Batch).events
        except msgspec.ValidationError as err:
            raise _invalid(err, "$") from None
    if not isinstance(raw, dict):
        raise InvalidEvent('$: expected an event object or {"events": [...]}', field="$")
    try:
        return [msgspec.convert(raw, EventIn)]
    except msgspec.ValidationError as err:
        raise _invalid(err, "$") from None


def split_data(data: Data | dict[str, Any] | None, path: str) -> tuple[Data, dict[str, Any]]:
    """Validate the known commerce fields of ``data``; keep the rest as custom properties."""
    if isinstance(data, Data):  # decoded as such already (decode_events): nothing else in it
        return data, {}
    if not data:
        return Data(), {}
    if data.keys() <= _DATA_FIELDS:  # no custom properties (the usual case): nothing to split
        known, custom = data, {}
    else:
        known = {k: v for k, v in data.items() if k in _DATA_FIELDS}
        custom = {k: v for k, v in data.items() if k not in _DATA_FIELDS}
    try:
        return msgspec.convert(known, Data), custom
    except msgspec.ValidationError as err:
        raise _invalid(err, f"{path}.data") from None


def split_event_data(event: EventIn, path: str) -> tuple[Data, dict[str, Any]]:
    """``split_data`` of ``event.data``: a dict as ``EventIn`` declares it, or the ``Data``
    that ``decode_events`` decoded it into already (``_EventWithKnownData``). Read here, in
    a module that is not compiled: compiled code would hold ``data`` to its declared type."""
    return split_data(event.data, path)


def check_time(value: float | None, now: float, path: str) -> int:
    """Event time in unix seconds; receipt time when absent. Milliseconds are refused."""
    if value is None:
        return int(now)
    if value > now + MAX_FUTURE_SKEW_SECONDS:
        raise InvalidEvent(
            f"{path}.time: is in the future (unix seconds expected, not milliseconds)",
            field=f"{path}.time",
        )
    if value < MIN_EVENT_TIME:
        raise InvalidEvent(f"{path}.time: is before the year 2000", field=f"{path}.time")
    return int(value)


def mint_event_id() -> str:
    """A version-4 UUID from the module PRNG (seeded from the OS, reseeded after fork).

    Unique is what an event_id must be, not unguessable; ``uuid.uuid4()`` would make a
    urandom syscall per event on the hot path.
    """
    # What str(uuid.UUID(int=..., version=4)) gives, without building the UUID object.
    bits = random.getrandbits(128) & _UUID_RANDOM_BITS | _UUID_V4_BITS
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def now() -> float:
    return _time.time()


def encode_stored(event: StoredEvent) -> bytes:
    return _stored_encoder.encode(event)


def decode_stored(blob: bytes) -> StoredEvent:
    return _stored_decoder.decode(blob)
