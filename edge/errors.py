"""The one error tree of capi-edge.

    EdgeError
     ├── ConfigError            the config file cannot be used; the message says what to fix
     ├── RequestError           a client sent something we refuse (always a 4xx)
     │    ├── InvalidEvent        400, names the field path (``$.events[0].user.email``)
     │    ├── Unauthorized        401, missing or wrong API key
     │    ├── OriginNotAllowed    403, the Origin is not one of ``site.domains``
     │    ├── NotFound            404
     │    ├── BodyTooLarge        413, the body passed the limit while being read
     │    ├── UnsupportedMedia    415
     │    └── RateLimited         429
     └── StoreError             the durable store failed; nothing was acknowledged (503)

Foreign exceptions (msgspec, sqlite3, httpx) are translated where they are caught:
validation in ``edge.schema``, storage in ``edge.store``, the network in ``edge.dispatcher``.
Messages never contain secrets or raw PII: they name fields, not values.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error capi-edge raises on purpose."""


class ConfigError(EdgeError):
    """The configuration is unusable. ``str(err)`` is meant for the operator."""


class RequestError(EdgeError):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_json(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class InvalidEvent(RequestError):
    status_code = 400
    code = "invalid_event"


class Unauthorized(RequestError):
    status_code = 401
    code = "unauthorized"


class OriginNotAllowed(RequestError):
    status_code = 403
    code = "origin_not_allowed"


class NotFound(RequestError):
    status_code = 404
    code = "not_found"


class BodyTooLarge(RequestError):
    status_code = 413
    code = "body_too_large"


class UnsupportedMedia(RequestError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(RequestError):
    status_code = 429
    code = "rate_limited"


class StoreError(EdgeError):
    """The durable store failed; the request that needed it was not acknowledged."""
