"""How the doctor reaches a deployment (client, fixed addresses, TLS) and explains failures."""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping

import httpx

from .target import Target

USER_AGENT = "Mozilla/5.0 (compatible; CapiEdgeDoctorBot/1.0; +https://github.com/capi-edge)"
CERT_FIX = (
    "use a certificate from a public CA for exactly this name (Caddy gets one by itself); "
    "for an internal CA, pass --ca-file"
)


class ResolvingTransport(httpx.BaseTransport):
    """Connect to fixed addresses for some host names, keeping the Host header and TLS SNI."""

    def __init__(self, addresses: Mapping[str, str], **options: object) -> None:
        self.addresses = {host.lower(): address for host, address in addresses.items()}
        self.inner = httpx.HTTPTransport(**options)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        address = self.addresses.get(request.url.host)
        if not address:
            return self.inner.handle_request(request)
        # a copy for the wire: the client keeps the request (and response.url) it made
        wire = httpx.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,  # Host still names the original host
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": request.url.host},
        )
        return self.inner.handle_request(wire)

    def close(self) -> None:
        self.inner.close()


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def client_for(target: Target) -> httpx.Client:
    transport = ResolvingTransport(target.resolve, verify=tls_context(target.ca_file))
    return httpx.Client(
        transport=transport,
        timeout=target.timeout,
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
    )


def certificate_error(error: Exception) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def fix_for(error: Exception, fix: str) -> str:
    return CERT_FIX if certificate_error(error) else fix


def explain(error: Exception, url: httpx.URL) -> str:
    """A network failure in plain words."""
    text = str(error)
    where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    if isinstance(error, httpx.ConnectError):
        if certificate_error(error):
            reason = re.search(r"certificate verify failed: ([^(]+)", text)
            detail = f" ({reason.group(1).strip()})" if reason else ""
            return f"{url.host} presented a certificate this machine does not trust{detail}"
        if "Name or service not known" in text or "nodename nor servname" in text:
            return f"{url.host} does not resolve to an address (no DNS record?)"
        if "refused" in text.lower():
            return f"nothing accepts connections on {where} (connection refused)"
        return f"cannot connect to {where}: {text}"
    if isinstance(error, httpx.TimeoutException):
        return f"{where} did not answer within the time limit"
    return f"{url} failed: {text or type(error).__name__}"


def certificate_problem(error: ssl.SSLCertVerificationError) -> str:
    message = (error.verify_message or str(error)).strip()
    lowered = message.lower()
    if "expired" in lowered:
        return "the certificate has expired"
    if "hostname mismatch" in lowered or "not valid for" in lowered:
        return "the certificate is for another name"
    if "self-signed" in lowered or "self signed" in lowered or "local issuer" in lowered:
        return "the certificate is not signed by an authority browsers trust"
    return f"the certificate is not valid ({message})"
