"""The dashboard's guard: sign-in required, sessions that cannot be forged, no cross-site
writes, CSRF on every POST, sign-in attempts limited, security headers on every page."""

from __future__ import annotations

from starlette.routing import Mount, Route

from edge.admin.security import COOKIE_NAME, SIGN_IN_ATTEMPTS

from .conftest import ADMIN_ORIGIN, ADMIN_PASSWORD, csrf_of

PAGES = (
    "/admin/",
    "/admin/connect/meta",
    "/admin/connect/meta/credentials",
    "/admin/connect/meta/review",
    "/admin/destinations/tiktok",
    "/admin/debug",
    "/admin/quality",
    "/admin/dead-letters",
    "/admin/config",
    "/admin/config/export",
)
APIS = ("/admin/api/status", "/admin/debug/stream")


def test_every_page_redirects_to_sign_in_without_a_session(make_dashboard):
    board = make_dashboard()
    for path in PAGES:
        answer = board.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/admin/login?next=/admin/"), path
    for path in APIS:
        assert board.get(path).status_code == 401, path


def test_signing_in_leads_back_to_the_page_asked_for(make_dashboard):
    board = make_dashboard()
    page = board.get("/admin/quality")  # follows the redirect to the sign-in page
    assert page.url.path == "/admin/login"
    answer = board.post(
        "/admin/login",
        {"password": ADMIN_PASSWORD, "next": "/admin/quality"},
        token=csrf_of(page.text),
    )
    assert answer.headers["location"] == "/admin/quality"
    assert board.get("/admin/quality").status_code == 200


def test_next_cannot_leave_the_dashboard(make_dashboard):
    board = make_dashboard()
    for target in ("https://evil.example/", "//evil.example/admin/", "/admin/..//evil", "/other"):
        page = board.get("/admin/login")
        answer = board.post(
            "/admin/login", {"password": ADMIN_PASSWORD, "next": target}, token=csrf_of(page.text)
        )
        assert answer.headers["location"] == "/admin/", target


def test_the_session_cookie_is_host_prefixed_secure_httponly_strict(make_dashboard):
    board = make_dashboard()
    header = board.get("/admin/login").headers["set-cookie"]
    assert header.startswith(f"{COOKIE_NAME}=")
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "path", "max-age"} <= attributes
    assert "domain" not in attributes
    assert "SameSite=Strict" in header and "Path=/;" in header


def test_a_wrong_password_is_refused(make_dashboard):
    board = make_dashboard()
    page = board.get("/admin/login")
    answer = board.post("/admin/login", {"password": "nope"}, token=csrf_of(page.text))
    assert answer.status_code == 401
    assert "Wrong password" in answer.text
    assert board.get("/admin/", follow_redirects=False).status_code == 303


def test_a_tampered_session_cookie_is_refused(make_dashboard):
    board = make_dashboard().sign_in()
    cookie = board.client.cookies[COOKIE_NAME]
    board.client.cookies.clear()
    board.client.cookies.set(COOKIE_NAME, cookie, domain="t.shop.example")
    assert board.get("/admin/", follow_redirects=False).status_code == 200  # the control
    # Change a signature character that carries whole bits: the last base64 character of a
    # 20-byte signature holds padding bits, and flipping only those leaves it valid.
    flipped = "A" if cookie[-5] != "A" else "B"
    for forged in (
        cookie[:-5] + flipped + cookie[-4:],  # the signature changed
        "eyJzaWQiOiJ4IiwiY3NyZiI6InkiLCJhdXRoIjoxfQ." + cookie.partition(".")[2],  # the payload
        "garbage",
    ):
        board.client.cookies.clear()
        board.client.cookies.set(COOKIE_NAME, forged, domain="t.shop.example")
        answer = board.get("/admin/", follow_redirects=False)
        assert answer.status_code == 303, forged
        assert answer.headers["location"].startswith("/admin/login")
        assert board.get("/admin/api/status").status_code == 401


def test_cross_site_posts_are_refused(dashboard):
    for headers in (
        {"origin": "https://evil.example"},
        {"origin": "https://shop.example"},  # same site, other origin: a shop page is not us
        {"origin": "null"},
        {"origin": ADMIN_ORIGIN, "sec-fetch-site": "cross-site"},
        {"origin": ADMIN_ORIGIN, "sec-fetch-site": "same-site"},
    ):
        answer = dashboard.client.post(
            "/admin/destinations/tiktok/disconnect",
            data={"csrf_token": dashboard.csrf},
            headers=headers,
            follow_redirects=False,
        )
        assert answer.status_code == 403, headers
    assert dashboard.admin.registry.raw("tiktok") is not None  # nothing happened


def test_cross_site_reads_are_refused_but_links_work(dashboard):
    # A shop page's fetch() with credentials (CORS would let it read the answer): refused.
    answer = dashboard.get(
        "/admin/api/status",
        headers={
            "origin": "https://shop.example",
            "sec-fetch-site": "same-site",
            "sec-fetch-mode": "cors",
        },
    )
    assert answer.status_code == 403
    # Following a link to the dashboard from elsewhere is a navigation: allowed.
    answer = dashboard.get(
        "/admin/", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    )
    assert answer.status_code == 200


def test_every_post_needs_the_csrf_token(dashboard):
    mount = next(r for r in dashboard.app.routes if isinstance(r, Mount) and r.path == "/admin")
    posts = [
        r.path.replace("{platform}", "meta").replace("{name}", "tiktok")
        for r in mount.app.routes
        if isinstance(r, Route) and "POST" in (r.methods or ())
    ]
    assert len(posts) >= 12
    for path in posts:
        for token in ("", "wrong-token"):
            answer = dashboard.post(f"/admin{path}", token=token)
            assert answer.status_code == 403, (path, token)
            assert "CSRF" in answer.text
    assert dashboard.admin.registry.raw("tiktok") is not None


def test_the_csrf_token_may_come_in_a_header(dashboard):
    answer = dashboard.post_json("/admin/api/validate/meta", {"field": "pixel_id", "value": "1"})
    assert answer.status_code == 200
    answer = dashboard.client.post(
        "/admin/api/validate/meta",
        json={"field": "pixel_id", "value": "1"},
        headers={"origin": ADMIN_ORIGIN, "x-csrf-token": "forged"},
    )
    assert answer.status_code == 403


def test_sign_in_attempts_are_rate_limited(make_dashboard):
    board = make_dashboard()
    token = csrf_of(board.get("/admin/login").text)
    for _ in range(SIGN_IN_ATTEMPTS):
        assert board.post("/admin/login", {"password": "guess"}, token=token).status_code == 401
    answer = board.post("/admin/login", {"password": ADMIN_PASSWORD}, token=token)
    assert answer.status_code == 429  # even the right password waits
    assert int(answer.headers["retry-after"]) >= 1
    assert "Too many sign-in attempts" in answer.text


def test_signing_out_ends_the_session_even_for_a_copied_cookie(dashboard):
    copied = dashboard.client.cookies[COOKIE_NAME]
    answer = dashboard.post("/admin/logout")
    assert answer.status_code == 303
    assert dashboard.get("/admin/", follow_redirects=False).status_code == 303
    dashboard.client.cookies.clear()
    dashboard.client.cookies.set(COOKIE_NAME, copied, domain="t.shop.example")
    assert dashboard.get("/admin/", follow_redirects=False).status_code == 303


def test_pages_carry_security_headers(dashboard):
    for path in ("/admin/", "/admin/login", "/admin/api/status"):
        headers = dashboard.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


def test_a_stored_hash_is_accepted_as_the_password(make_dashboard):
    from edge.admin.passwords import hash_password

    board = make_dashboard(
        admin={"password": hash_password("another-long-password", "pbkdf2_sha256")}
    )
    board.sign_in("another-long-password")
    assert board.get("/admin/").status_code == 200
