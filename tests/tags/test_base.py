"""What the dispatcher puts on the wire: ``PlatformRequest.body``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tags import PLATFORMS, TAGS
from tags.base import PlatformRequest

from ..support import CREDENTIALS
from .events import destination, page_view, purchase


def stdlib(payload: Any) -> bytes:
    """The body as the stdlib wrote it before: compact, UTF-8, nothing escaped needlessly."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("name", PLATFORMS)
def test_every_tags_json_body_is_what_the_stdlib_writes(name):
    tag = TAGS[name]
    events = [purchase(), page_view(), purchase(event_id="evt-0003", custom={"note": "naïve ☃"})]
    for built in tag.build(events, destination(tag.SPEC, CREDENTIALS[name])):
        request = built.request
        if request is not None and request.json is not None:
            assert request.body() == stdlib(request.json)


@pytest.mark.parametrize(
    "payload",
    [
        {"data": [{"value": 59.8, "n": 3, "big": 12345678901234567890, "cents": 0.01}]},
        {"text": 'quote " backslash \\ slash / tab \t newline \n nul \x00 del \x7f'},
        {"unicode": "naïve café ☃ 𝄞 \u2028", "empty": {}, "list": [], "none": None},
        [True, False, 0, -1, 2.5, "x"],
    ],
)
def test_json_bodies_are_byte_for_byte_the_stdlibs(payload):
    assert PlatformRequest("POST", "https://example.test", json=payload).body() == stdlib(payload)


def test_exponents_are_the_one_spelling_that_differs():
    payload = {"tiny": 1e-7, "huge": 1.5e300}
    body = PlatformRequest("POST", "https://example.test", json=payload).body()
    assert body == b'{"tiny":1e-7,"huge":1.5e300}'  # the stdlib writes 1e-07 and 1.5e+300
    assert json.loads(body) == payload


def test_form_and_empty_bodies():
    assert PlatformRequest("POST", "https://x.test", form={"a": "1 2"}).body() == b"a=1+2"
    assert PlatformRequest("GET", "https://x.test").body() is None
