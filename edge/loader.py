"""Serving the drop-in script: ETag, compression, and caching that suits a fixed URL.

``/loader.js`` is revalidated daily (ETag makes that a 304), so a new release reaches
storefronts within a day; ``/loader.js?v=<etag>`` never changes and is cached for a year.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from edge.assets import static_file

LOADER_PATH = static_file("loader.js")
CACHE_REVALIDATE = "public, max-age=86400, stale-while-revalidate=604800"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_TYPE = "application/javascript; charset=utf-8"


class LoaderScript:
    def __init__(self, path: Path = LOADER_PATH) -> None:
        self.source = path.read_bytes()
        self.gzipped = gzip.compress(self.source, compresslevel=9, mtime=0)
        self.version = hashlib.sha256(self.source).hexdigest()[:16]
        self.etag = f'"{self.version}"'

    async def serve(self, request: Request) -> Response:
        versioned = request.query_params.get("v") == self.version
        headers = {
            "etag": self.etag,
            "cache-control": CACHE_IMMUTABLE if versioned else CACHE_REVALIDATE,
            "vary": "Accept-Encoding",
            "x-content-type-options": "nosniff",
            # the script runs on the shop's pages, so any site may load it
            "cross-origin-resource-policy": "cross-origin",
        }
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["content-encoding"] = "gzip"
            return Response(self.gzipped, media_type=MEDIA_TYPE, headers=headers)
        return Response(self.source, media_type=MEDIA_TYPE, headers=headers)
