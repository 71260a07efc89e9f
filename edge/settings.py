"""Config-as-code: the TOML file, validated completely before anything starts.

Every problem is reported at once, each line naming the key path and what to fix, so
``capi-edge check`` is a useful pre-deploy gate. Secrets may be written three ways:

    access_token = "EAAB..."                 # literal
    access_token = "env:META_ACCESS_TOKEN"   # read from the environment at start-up
    access_token = "file:/run/secrets/meta"  # read from a file (Docker/Kubernetes secrets)

A literal that really starts with ``env:`` or ``file:`` is written ``literal:env:...``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import msgspec

from tags import PLATFORMS, TAGS
from tags.base import Destination, Tag, TagSpec

from .errors import ConfigError

CONSENT_PURPOSES = ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization")
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1/32", "::1/128")
COMMON_DESTINATION_KEYS = frozenset({"enabled", "base_url", "events", "consent"})
SECRET_PREFIXES = ("env:", "file:", "literal:")
MIN_API_KEY_LENGTH = 16


class SiteConfig(msgspec.Struct, forbid_unknown_fields=True):
    domains: list[str]
    default_country: str | None = None  # ISO-2, for phone numbers written without +country


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True):
    database: str = "capi-edge.db"
    trusted_proxies: list[str] = msgspec.field(
        default_factory=lambda: list(DEFAULT_TRUSTED_PROXIES)
    )
    durability: Literal["full", "normal"] = "full"
    # Per client address on the hit endpoints; 0 turns the limiter off.
    rate_limit_per_second: float = 20.0
    rate_limit_burst: float = 60.0


class ApiConfig(msgspec.Struct, forbid_unknown_fields=True):
    keys: list[str] = msgspec.field(default_factory=list)


class ConsentConfig(msgspec.Struct, forbid_unknown_fields=True):
    # What a signal the site did not send counts as. Deny by default: nothing leaves
    # without the consent a destination needs.
    default: Literal["granted", "denied"] = "denied"


class CookieConfig(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True


class DispatchConfig(msgspec.Struct, forbid_unknown_fields=True):
    linger_ms: int = 250
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 900.0
    max_attempts: int = 30
    setup_recheck_seconds: float = 300.0
    poll_seconds: float = 1.0


class FileConfig(msgspec.Struct, forbid_unknown_fields=True):
    site: SiteConfig
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    consent: ConsentConfig = msgspec.field(default_factory=ConsentConfig)
    cookies: CookieConfig = msgspec.field(default_factory=CookieConfig)
    dispatch: DispatchConfig = msgspec.field(default_factory=DispatchConfig)
    destinations: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DestinationSettings:
    """A destination as the edge runs it: the tag's spec plus the resolved config."""

    spec: TagSpec
    destination: Destination
    consent: frozenset[str]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tag(self) -> Tag:
        return TAGS[self.spec.name]


@dataclass(frozen=True, slots=True)
class Settings:
    domains: tuple[str, ...]
    default_country: str | None
    database: Path
    durability: str
    rate_limit: tuple[float, float]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    api_keys: frozenset[str]
    consent_default: str
    cookies_enabled: bool
    dispatch: DispatchConfig
    destinations: Mapping[str, DestinationSettings] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def secrets(self) -> list[str]:
        """Every secret value, so logs and debug views can redact them."""
        values = list(self.api_keys)
        for d in self.destinations.values():
            values += d.destination.secret_values(d.spec)
        return values


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")

    def raise_if_any(self, source: str) -> None:
        if self.lines:
            listing = "\n".join(f"  - {line}" for line in self.lines)
            raise ConfigError(f"{source} has {len(self.lines)} problem(s):\n{listing}")


def resolve_secret(value: str, path: str, problems: _Problems, base: Path) -> str | None:
    if value.startswith("literal:"):
        return value.removeprefix("literal:")
    if value.startswith("env:"):
        name = value.removeprefix("env:")
        resolved = os.environ.get(name)
        if not resolved:
            problems.add(path, f"environment variable {name} is not set (or empty)")
        return resolved or None
    if value.startswith("file:"):
        target = base / value.removeprefix("file:")
        try:
            return target.read_text().strip() or None
        except OSError as err:
            problems.add(path, f"cannot read secret file {target} ({err.strerror})")
            return None
    return value


def _destination(
    name: str, raw: dict[str, Any], settings_site: SiteConfig, problems: _Problems, base: Path
) -> DestinationSettings | None:
    path = f"destinations.{name}"
    if name not in PLATFORMS:
        problems.add(path, f"unknown destination; expected one of {', '.join(PLATFORMS)}")
        return None
    tag = TAGS.get(name)
    if tag is None:
        problems.add(path, "this platform is not available in this release yet")
        return None
    spec = tag.SPEC
    known = {c.name for c in spec.credentials} | {o.name for o in spec.options}
    for key in raw:
        if key not in known and key not in COMMON_DESTINATION_KEYS:
            expected = ", ".join(sorted(known | COMMON_DESTINATION_KEYS))
            problems.add(f"{path}.{key}", f"unknown key; {name} takes {expected}")

    credentials: dict[str, str] = {}
    for cred in spec.credentials:
        value = raw.get(cred.name)
        if value is None:
            if cred.required:
                problems.add(f"{path}.{cred.name}", f"missing; {cred.hint}")
            continue
        if isinstance(value, str):
            value = resolve_secret(value, f"{path}.{cred.name}", problems, base)
            if value is None:
                continue
        problem = cred.problem(value)
        if problem:
            problems.add(f"{path}.{cred.name}", problem)
        else:
            credentials[cred.name] = value

    options: dict[str, str] = {}
    for option in spec.options:
        value = raw.get(option.name)
        if value is None:
            continue
        if isinstance(value, str):
            value = resolve_secret(value, f"{path}.{option.name}", problems, base)
            if value is None:
                continue
        problem = option.problem(value)
        if problem:
            problems.add(f"{path}.{option.name}", problem)
        else:
            options[option.name] = value

    base_url = raw.get("base_url", spec.base_url)
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        problems.add(f"{path}.base_url", "must be an http:// or https:// URL")
        base_url = spec.base_url

    event_map = dict(spec.event_map)
    overrides = raw.get("events", {})
    if not isinstance(overrides, dict):
        problems.add(f"{path}.events", "must be a table of neutral name = platform name")
        overrides = {}
    for neutral, platform_name in overrides.items():
        if platform_name is False:
            platform_name = ""
        if not isinstance(platform_name, str):
            problems.add(f"{path}.events.{neutral}", "must be a platform event name, or false")
            continue
        event_map[neutral] = platform_name

    consent = raw.get("consent", sorted(spec.consent))
    if not isinstance(consent, list) or not all(c in CONSENT_PURPOSES for c in consent):
        problems.add(f"{path}.consent", f"must be a list drawn from {', '.join(CONSENT_PURPOSES)}")
        consent = sorted(spec.consent)

    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.add(f"{path}.enabled", "must be true or false")
    if enabled is False:
        return None
    return DestinationSettings(
        spec=spec,
        destination=Destination(
            name=name,
            credentials=MappingProxyType(credentials),
            base_url=base_url.rstrip("/"),
            event_map=MappingProxyType(event_map),
            options=MappingProxyType(options),
            default_country=settings_site.default_country,
        ),
        consent=frozenset(consent),
    )


def _networks(
    raw: list[str], problems: _Problems
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for i, entry in enumerate(raw):
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            problems.add(f"server.trusted_proxies[{i}]", "is not an IP address or CIDR range")
    return tuple(nets)


def parse(text: str, *, source: str = "config", base: Path | None = None) -> Settings:
    """Validate a whole TOML config; raise ConfigError listing every problem."""
    base = base or Path.cwd()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source} is not valid TOML: {err}") from None
    try:
        file_config = msgspec.convert(data, FileConfig)
    except msgspec.ValidationError as err:
        message = str(err).replace("`$.", "`").replace("`$`", "the top level")
        raise ConfigError(f"{source}: {message}") from None

    problems = _Problems()
    site = file_config.site
    if not site.domains:
        problems.add("site.domains", "list at least one domain that may send hits")
    for i, domain in enumerate(site.domains):
        if not domain or "/" in domain or ":" in domain or domain != domain.lower():
            problems.add(f"site.domains[{i}]", "must be a lowercase host name such as shop.example")
    if site.default_country is not None and (
        len(site.default_country) != 2 or not site.default_country.isalpha()
    ):
        problems.add("site.default_country", "must be an ISO 3166 alpha-2 code such as US")

    api_keys = []
    for i, key in enumerate(file_config.api.keys):
        resolved = resolve_secret(key, f"api.keys[{i}]", problems, base)
        if resolved is not None and len(resolved) < MIN_API_KEY_LENGTH:
            problems.add(
                f"api.keys[{i}]", f"is too short; use at least {MIN_API_KEY_LENGTH} characters"
            )
        elif resolved is not None:
            api_keys.append(resolved)

    dispatch = file_config.dispatch
    if dispatch.retry_base_seconds <= 0 or dispatch.retry_max_seconds < dispatch.retry_base_seconds:
        problems.add("dispatch", "retry_base_seconds must be > 0 and <= retry_max_seconds")
    if dispatch.max_attempts < 1:
        problems.add("dispatch.max_attempts", "must be at least 1")

    destinations = {}
    for name, raw in file_config.destinations.items():
        if not isinstance(raw, dict):
            problems.add(f"destinations.{name}", "must be a table")
            continue
        dest = _destination(name, raw, site, problems, base)
        if dest is not None:
            destinations[name] = dest

    trusted = _networks(file_config.server.trusted_proxies, problems)
    problems.raise_if_any(source)
    database = Path(file_config.server.database)
    if not database.is_absolute() and file_config.server.database != ":memory:":
        database = base / database
    return Settings(
        domains=tuple(site.domains),
        default_country=site.default_country.upper() if site.default_country else None,
        database=database,
        durability=file_config.server.durability,
        rate_limit=(file_config.server.rate_limit_per_second, file_config.server.rate_limit_burst),
        trusted_proxies=trusted,
        api_keys=frozenset(api_keys),
        consent_default=file_config.consent.default,
        cookies_enabled=file_config.cookies.enabled,
        dispatch=dispatch,
        destinations=MappingProxyType(destinations),
    )


def load(path: str | Path) -> Settings:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    return parse(text, source=str(path), base=path.parent.resolve())
