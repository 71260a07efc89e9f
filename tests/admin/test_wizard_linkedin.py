"""The connect wizard with LinkedIn's either/or credentials: the refresh fields render as
optional inputs (secrets as password fields), a partial refresh set is refused on the
missing fields, and a refresh setup is tested through the token exchange at token_url."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from ..support import respond

LI_HOST = "linkedin.test"
OAUTH_HOST = "oauth.linkedin.test"
REFRESH = {
    "client_id": "86abcdef0g1h2i",
    "client_secret": "WPL_AP1.clientSECRET0123.abcd==",
    "refresh_token": "AQW-programmatic-refresh-token-0123456789",
}
LINKEDIN = {
    "conversion_id": "104567",
    "base_url": f"https://{LI_HOST}",
    "token_url": f"https://{OAUTH_HOST}/oauth/v2/accessToken",
}


def test_the_refresh_fields_render_as_optional(dashboard):
    intro = dashboard.get("/admin/connect/linkedin").text
    for title in ("Access token", "OAuth client ID", "OAuth client secret", "Refresh token"):
        assert f'<strong>{title}</strong> <span class="muted">(optional)</span>' in intro
    page = dashboard.get("/admin/connect/linkedin/credentials").text
    for name, kind in [
        ("access_token", "password"),
        ("client_id", "text"),
        ("client_secret", "password"),
        ("refresh_token", "password"),
        ("token_url", "text"),
    ]:
        assert re.search(rf'name="{name}"\s+type="{kind}"', page), name
    blank = dashboard.post_json(
        "/admin/api/validate/linkedin", {"field": "access_token", "value": ""}
    )
    assert blank.json() == {"ok": True, "message": ""}  # either/or: checked on submit


def test_a_partial_refresh_set_is_refused_on_the_missing_fields(dashboard):
    answer = dashboard.post(
        "/admin/connect/linkedin/credentials",
        {**LINKEDIN, "client_id": REFRESH["client_id"]},
    )
    assert answer.status_code == 422
    assert "OAuth client secret missing;" in answer.text
    assert "Refresh token missing;" in answer.text
    assert "client_id, client_secret and refresh_token go together" in answer.text
    empty = dashboard.post("/admin/connect/linkedin/credentials", LINKEDIN)
    assert empty.status_code == 422 and "Access token missing;" in empty.text


def test_a_refresh_setup_is_tested_through_the_exchange(dashboard, platforms):
    platforms.script(
        OAUTH_HOST, respond(200, {"access_token": "AQV-fresh-0123456789", "expires_in": 5184000})
    )
    result = dashboard.connect("linkedin", {**LINKEDIN, **REFRESH})
    assert result["ok"], result
    (exchange,) = platforms.sent_to(OAUTH_HOST)
    assert parse_qs(exchange.content.decode())["refresh_token"] == [REFRESH["refresh_token"]]
    (probe,) = platforms.sent_to(LI_HOST)
    assert probe.headers["authorization"] == "Bearer AQV-fresh-0123456789"
    assert dashboard.admin.registry.raw("linkedin") is not None  # connected
    page = dashboard.get("/admin/connect/linkedin/credentials").text
    assert REFRESH["client_id"] in page and "saved: leave empty to keep" in page
    for secret in (REFRESH["client_secret"], REFRESH["refresh_token"]):
        assert secret not in page
