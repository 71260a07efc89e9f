"""LinkedIn's refresh flow, the pure half: the exchange request, reading LinkedIn's OAuth
answers, which token the requests carry, and the either/or credential rule.

Answer bodies are in LinkedIn's OAuth shapes: ``{access_token, expires_in, refresh_token,
refresh_token_expires_in}`` on success, ``{error, error_description}`` on failure.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tags import linkedin
from tags.base import Kind, PlatformResponse, Token
from tags.oauth import DEFAULT_TOKEN_SECONDS, TokenError
from tests.tags.events import destination, purchase

STATIC = "AQVlinkedin_member-token.0123456789"
NEW_TOKEN = "AQV-refreshed-access-token-0123456789"
REFRESH = {
    "client_id": "86abcdef0g1h2i",
    "client_secret": "WPL_AP1.clientSECRET0123.abcd==",
    "refresh_token": "AQW-programmatic-refresh-token-0123456789",
}
RULE = {"conversion_id": "104567"}
SECRETS = (REFRESH["client_secret"], REFRESH["refresh_token"], STATIC)


def dest(credentials: dict[str, str], **kwargs: Any) -> Any:
    return destination(linkedin.SPEC, {**RULE, **credentials}, **kwargs)


def oauth(status: int, body: Any, headers: dict[str, str] | None = None) -> PlatformResponse:
    return PlatformResponse(status, headers or {}, json.dumps(body).encode())


def test_the_exchange_posts_the_refresh_form_to_linkedin() -> None:
    request = linkedin.token_request(dest(REFRESH))
    assert request is not None
    assert request.method == "POST"
    assert request.url == "https://www.linkedin.com/oauth/v2/accessToken"
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH["refresh_token"],
        "client_id": REFRESH["client_id"],
        "client_secret": REFRESH["client_secret"],
    }
    assert request.content_type() == "application/x-www-form-urlencoded"
    assert request.json is None and not request.headers  # no bearer on the exchange itself


def test_token_url_points_the_exchange_elsewhere() -> None:
    local = dest(REFRESH, options={"token_url": "http://127.0.0.1:8787/linkedin_oauth/token"})
    request = linkedin.token_request(local)
    assert request is not None and request.url == "http://127.0.0.1:8787/linkedin_oauth/token"


def test_a_static_token_needs_no_exchange() -> None:
    assert linkedin.token_request(dest({"access_token": STATIC})) is None
    # token_url alone does not turn the refresh flow on
    assert (
        linkedin.token_request(dest({"access_token": STATIC}, options={"token_url": "x"})) is None
    )


def test_secrets_are_redacted_from_the_loggable_exchange() -> None:
    configured = dest(REFRESH, bearer=NEW_TOKEN)
    request = linkedin.token_request(configured)
    assert request is not None
    text = json.dumps(request.redacted(configured.secret_values(linkedin.SPEC)))
    assert REFRESH["client_secret"] not in text and REFRESH["refresh_token"] not in text
    assert REFRESH["client_id"] in text  # not a secret


def test_a_good_answer_is_a_token_for_expires_in() -> None:
    answer = oauth(
        200,
        {
            "access_token": NEW_TOKEN,
            "expires_in": 5_184_000,
            "refresh_token": REFRESH["refresh_token"],
            "refresh_token_expires_in": 31_535_000,
        },
    )
    assert linkedin.parse_token(answer) == Token(NEW_TOKEN, 5_184_000.0, 31_535_000.0)


@pytest.mark.parametrize("expires_in", [None, "soon", 0, -5, True])
def test_an_answer_without_a_usable_lifetime_is_kept_for_an_hour(expires_in: Any) -> None:
    body = {"access_token": NEW_TOKEN} | ({} if expires_in is None else {"expires_in": expires_in})
    assert linkedin.parse_token(oauth(200, body)).expires_in == DEFAULT_TOKEN_SECONDS


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "expired or revoked"},
            Kind.SETUP,
            "invalid_grant",
        ),
        (
            401,
            {"error": "invalid_client", "error_description": "Client authentication failed"},
            Kind.SETUP,
            "invalid_client",
        ),
        (
            400,
            {"error": "invalid_request", "error_description": "A required parameter"},
            Kind.SETUP,
            "invalid_request",
        ),
        (500, {"error": "server_error"}, Kind.RETRY, "server_error"),
        (503, "<html>Service Unavailable</html>", Kind.RETRY, "http 503"),
        (400, {"error": "temporarily_unavailable"}, Kind.RETRY, "temporarily_unavailable"),
        (200, {"expires_in": 5_184_000}, Kind.RETRY, "http 200"),  # no token in a 200
        (429, {"error": "rate_limited"}, Kind.THROTTLED, "rate_limited"),
    ],
)
def test_exchange_errors_are_classified(status: int, body: Any, kind: Kind, code: str) -> None:
    with pytest.raises(TokenError) as caught:
        linkedin.parse_token(oauth(status, body))
    assert isinstance(caught.value, ValueError)  # what edge.oauth reads a verdict from
    assert caught.value.verdict.kind is kind and caught.value.code == code
    assert str(caught.value).startswith(f"linkedin oauth {code}: ")


def test_invalid_grant_names_the_code_and_the_fix_never_a_secret() -> None:
    # a description that echoes the refresh token must not reach the reason
    body = {
        "error": "invalid_grant",
        "error_description": f"The refresh token {REFRESH['refresh_token']} has expired; "
        f"client {REFRESH['client_secret']}",
    }
    with pytest.raises(TokenError) as caught:
        linkedin.parse_token(oauth(400, body))
    reason = caught.value.verdict.reason
    assert caught.value.verdict.kind is Kind.SETUP
    assert "invalid_grant" in reason and "365 days" in reason
    for secret in SECRETS:
        assert secret not in reason


def test_throttled_exchange_keeps_retry_after() -> None:
    with pytest.raises(TokenError) as caught:
        linkedin.parse_token(oauth(429, {}, {"Retry-After": "30"}))
    assert caught.value.verdict.retry_after == 30.0


def test_a_refreshing_destination_sends_the_refreshed_token_and_ignores_access_token() -> None:
    both = dest({**REFRESH, "access_token": STATIC}, bearer=NEW_TOKEN)
    [built] = linkedin.build([purchase()], both)
    assert built.request is not None
    assert built.request.headers["Authorization"] == f"Bearer {NEW_TOKEN}"
    assert linkedin.probe(both).headers["Authorization"] == f"Bearer {NEW_TOKEN}"


def test_a_static_destination_sends_its_access_token() -> None:
    [built] = linkedin.build([purchase()], dest({"access_token": STATIC}))
    assert built.request is not None
    assert built.request.headers["Authorization"] == f"Bearer {STATIC}"


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        (["access_token"], set()),
        (["client_id", "client_secret", "refresh_token"], set()),
        (["access_token", "client_id", "client_secret", "refresh_token"], set()),
        (["access_token", "client_id"], set()),  # the token alone is a complete set
        ([], {"access_token"}),
        (["conversion_id"], {"access_token"}),
        (["client_id"], {"client_secret", "refresh_token"}),
        (["client_secret", "refresh_token"], {"client_id"}),
    ],
)
def test_either_a_token_or_all_three_refresh_keys(present: list[str], missing: set[str]) -> None:
    problems = linkedin.SPEC.missing_credentials(present)
    assert set(problems) == missing
    for message in problems.values():
        assert message.startswith("missing; ")
    if missing == {"access_token"}:
        assert (
            "or set client_id, client_secret and refresh_token instead"
            in (problems["access_token"])
        )
    elif missing:
        message = next(iter(problems.values()))
        assert "client_id, client_secret and refresh_token go together" in message
        assert "or set access_token instead" in message


def test_new_credentials_validate_offline() -> None:
    checks = {c.name: c for c in linkedin.SPEC.credentials}
    for name, value in REFRESH.items():
        assert checks[name].problem(value) is None
        assert checks[name].problem("has spaces in it 0123456789") is not None
        assert not checks[name].required
    assert not checks["access_token"].required and checks["conversion_id"].required
    options = {o.name: o for o in linkedin.SPEC.options}
    assert options["token_url"].problem("http://127.0.0.1:8787/token") is None
    assert options["token_url"].problem("not a url") is not None
