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
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import msgspec

from tags import PLATFORMS, TAGS
from tags.base import Destination, Tag, TagSpec

from .consent import BUILTIN_REGIONS, ConsentPolicy, Region, expand_areas
from .errors import ConfigError
from .rules import NO_RULES, Rules, parse_rules

CONSENT_PURPOSES = ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization")
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1/32", "::1/128")
COMMON_DESTINATION_KEYS = frozenset({"enabled", "base_url", "events", "consent", "rules"})
MIN_API_KEY_LENGTH = 16
MIN_SECRET_KEY_LENGTH = 32
SIGNING_KEY_FILE = "secret_key"  # next to the database when [server] secret_key is not set
AREA_PATTERN = re.compile(r"^(EEA|EU|[A-Z]{2}|[A-Z]{2}-[A-Z0-9]{1,3})$")
MIN_ADMIN_PASSWORD_LENGTH = 12
DEFAULT_SESSION_HOURS = 12.0
DEFAULT_RETENTION_DAYS = 30.0
# Shorter would forget an event_id while a platform may still take the event (Meta: 7 days)
# and a repeat of it could be stored and sent again.
MIN_RETENTION_DAYS = 7.0


class SiteConfig(msgspec.Struct, forbid_unknown_fields=True):
    domains: list[str]
    default_country: str | None = None  # ISO-2, for phone numbers written without +country


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True):
    database: str = "capi-edge.db"
    trusted_proxies: list[str] = msgspec.field(
        default_factory=lambda: list(DEFAULT_TRUSTED_PROXIES)
    )
    durability: Literal["full", "normal"] = "full"
    # "journal": a hit is acknowledged once in the append-only journal, and the indexer
    # process files it into the store; "direct": group commit into the store (one process).
    ingest: Literal["journal", "direct"] = "journal"
    # Per client address on the hit endpoints; 0 turns the limiter off.
    rate_limit_per_second: float = 20.0
    rate_limit_burst: float = 60.0
    # Signs the identity backup cookie (literal, env:, file:). Unset: a random key kept in
    # <data dir>/secret_key. Several machines must share one: set it explicitly.
    secret_key: str | None = None
    # Events older than this with no delivery pending are deleted with their deliveries,
    # and older attempts too; 0 keeps everything (edge.retention).
    retention_days: float = DEFAULT_RETENTION_DAYS


class ApiConfig(msgspec.Struct, forbid_unknown_fields=True):
    keys: list[str] = msgspec.field(default_factory=list)


class RegionConfig(msgspec.Struct, forbid_unknown_fields=True):
    areas: list[str]  # "EEA", "EU", ISO countries ("GB"), ISO subdivisions ("US-CA")
    default: Literal["granted", "denied"] = "denied"
    gpc: Literal["skip", "ldu", "ignore"] = "skip"


class ConsentConfig(msgspec.Struct, forbid_unknown_fields=True):
    # What a signal the site did not send counts as where no region says otherwise (or the
    # visitor's location is unknown). Deny by default: nothing leaves without the consent
    # a destination needs.
    default: Literal["granted", "denied"] = "denied"
    gpc: Literal["skip", "ldu", "ignore"] = "skip"
    # Per-region defaults, by the visitor's geolocated country/subdivision ([geo]).
    # Absent: the built-in table (docs/consent.md); an empty table: none.
    regions: dict[str, RegionConfig] | None = None


class GeoConfig(msgspec.Struct, forbid_unknown_fields=True):
    database: str | None = None  # a MaxMind GeoLite2/GeoIP2 City or Country .mmdb file


class CookieConfig(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True


class DispatchConfig(msgspec.Struct, forbid_unknown_fields=True):
    linger_ms: int = 250
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 900.0
    max_attempts: int = 30
    setup_recheck_seconds: float = 300.0
    poll_seconds: float = 1.0


class AdminConfig(msgspec.Struct, forbid_unknown_fields=True):
    # A secret like the credentials (literal, env:, file:), or a stored hash made by
    # `capi-edge admin hash-password` (scrypt$... or pbkdf2_sha256$...).
    password: str
    vault_key_file: str | None = None  # else CAPI_EDGE_VAULT_KEY, else <data dir>/vault.key
    session_hours: float = DEFAULT_SESSION_HOURS


class FileConfig(msgspec.Struct, forbid_unknown_fields=True):
    site: SiteConfig
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    consent: ConsentConfig = msgspec.field(default_factory=ConsentConfig)
    cookies: CookieConfig = msgspec.field(default_factory=CookieConfig)
    geo: GeoConfig = msgspec.field(default_factory=GeoConfig)
    dispatch: DispatchConfig = msgspec.field(default_factory=DispatchConfig)
    destinations: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    admin: AdminConfig | None = None


@dataclass(frozen=True, slots=True)
class DestinationSettings:
    """A destination as the edge runs it: the tag's spec plus the resolved config."""

    spec: TagSpec
    destination: Destination
    consent: frozenset[str]
    rules: Rules = NO_RULES
    # GPC as configured for this destination ("skip" or "ldu"); None: the region decides.
    gpc_mode: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tag(self) -> Tag:
        return TAGS[self.spec.name]


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """The dashboard's ``[admin]`` section, resolved."""

    password: str  # the password itself, or a stored hash (see edge.admin.passwords)
    vault_key_file: Path | None
    session_seconds: float


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
    admin: AdminSettings | None = None
    # The parsed TOML as written (secrets unresolved) and the folder relative paths start
    # from: the dashboard merges its changes into these and exports them.
    source: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    base: Path = field(default_factory=Path.cwd)
    # [consent] resolved: global and per-region defaults (edge.consent.ConsentPolicy).
    consent: ConsentPolicy = field(default_factory=ConsentPolicy)
    geoip_database: Path | None = None
    secret_key: bytes | None = None  # None: the generated one (see ``secret_key``)
    ingest: str = "journal"  # [server] ingest: see edge.store.journaled
    retention_days: float = DEFAULT_RETENTION_DAYS  # 0: keep everything (edge.retention)

    def secrets(self) -> list[str]:
        """Every secret value, so logs and debug views can redact them."""
        values = list(self.api_keys)
        if self.secret_key is not None:
            values.append(self.secret_key.decode())
        if self.admin is not None:
            values.append(self.admin.password)
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
    # Either/or credentials (LinkedIn: a static token or refresh credentials). A key that is
    # written but unusable was named above already, so presence alone counts here.
    present = [c.name for c in spec.credentials if raw.get(c.name) is not None]
    for key, message in spec.missing_credentials(present).items():
        problems.add(f"{path}.{key}", message)

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

    rules, rule_problems = parse_rules(raw.get("rules", {}))
    for key, message in rule_problems:
        problems.add(f"{path}.rules{key}", message)

    # GPC: an explicit gpc_mode holds everywhere; unset, the visitor's region decides, and a
    # platform that has Limited Data Use is built ready for it (routing still skips where
    # the region's policy is "skip").
    gpc_mode = options.get("gpc_mode")
    if gpc_mode is None and any(o.name == "gpc_mode" for o in spec.options):
        options["gpc_mode"] = "ldu"

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
        rules=rules,
        gpc_mode=gpc_mode,
    )


def validate_destination(
    name: str, raw: dict[str, Any], *, default_country: str | None, base: Path
) -> tuple[DestinationSettings | None, list[str]]:
    """One destination table checked exactly as the config file's are (the dashboard uses
    this): the settings (None when invalid or ``enabled = false``) and every problem."""
    problems = _Problems()
    site = SiteConfig(domains=[], default_country=default_country)
    return _destination(name, raw, site, problems, base), problems.lines


def _admin(config: AdminConfig, problems: _Problems, base: Path) -> AdminSettings | None:
    from edge.admin.passwords import hash_problem, is_password_hash

    password = resolve_secret(config.password, "admin.password", problems, base)
    if config.session_hours <= 0:
        problems.add("admin.session_hours", "must be more than 0")
    if password is None:
        return None
    if is_password_hash(password):
        problem = hash_problem(password)
        if problem:
            problems.add("admin.password", problem)
    elif len(password) < MIN_ADMIN_PASSWORD_LENGTH:
        problems.add(
            "admin.password",
            f"is too short; use at least {MIN_ADMIN_PASSWORD_LENGTH} characters "
            "(or a hash from `capi-edge admin hash-password`)",
        )
    key_file = base / config.vault_key_file if config.vault_key_file else None
    return AdminSettings(password, key_file, config.session_hours * 3600)


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
    retention = file_config.server.retention_days
    if retention != 0 and not retention >= MIN_RETENTION_DAYS:  # also refuses NaN
        problems.add(
            "server.retention_days",
            f"must be 0 (keep everything) or at least {MIN_RETENTION_DAYS:g} days: platforms"
            " take events up to 7 days old, and an event_id must be remembered that long",
        )

    destinations = {}
    for name, raw in file_config.destinations.items():
        if not isinstance(raw, dict):
            problems.add(f"destinations.{name}", "must be a table")
            continue
        dest = _destination(name, raw, site, problems, base)
        if dest is not None:
            destinations[name] = dest

    trusted = _networks(file_config.server.trusted_proxies, problems)
    admin = _admin(file_config.admin, problems, base) if file_config.admin else None
    policy = _consent_policy(file_config.consent, problems)
    geoip_database = _geoip_database(file_config.geo, problems, base)
    secret = _secret_key(file_config.server, problems, base)
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
        admin=admin,
        source=MappingProxyType(data),
        base=base,
        consent=policy,
        geoip_database=geoip_database,
        secret_key=secret,
        ingest=file_config.server.ingest,
        retention_days=file_config.server.retention_days,
    )


# -- [consent], [geo] and the server secret ------------------------------------------------


def _consent_policy(config: ConsentConfig, problems: _Problems) -> ConsentPolicy:
    if config.regions is None:
        return ConsentPolicy(config.default, config.gpc, BUILTIN_REGIONS)
    regions, seen = [], {}
    for name, region in config.regions.items():
        path = f"consent.regions.{name}"
        if not region.areas:
            problems.add(f"{path}.areas", 'list at least one area, such as "EEA" or "US-CA"')
        for i, area in enumerate(region.areas):
            if not AREA_PATTERN.match(area):
                problems.add(
                    f"{path}.areas[{i}]",
                    "must be EEA, EU, an ISO 3166-1 country (DE) or an ISO 3166-2 "
                    "subdivision (US-CA), in capitals",
                )
        areas = expand_areas(a for a in region.areas if AREA_PATTERN.match(a))
        for area in sorted(areas):
            if area in seen:
                problems.add(f"{path}.areas", f"{area} is already in consent.regions.{seen[area]}")
            seen.setdefault(area, name)
        regions.append(Region(name, areas, region.default, region.gpc))
    return ConsentPolicy(config.default, config.gpc, tuple(regions))


def _geoip_database(config: GeoConfig, problems: _Problems, base: Path) -> Path | None:
    if config.database is None:
        return None
    path = base / config.database
    if not path.is_file():
        problems.add("geo.database", f"no MaxMind database at {path}")
        return None
    return path


def _secret_key(config: ServerConfig, problems: _Problems, base: Path) -> bytes | None:
    if config.secret_key is None:
        return None
    value = resolve_secret(config.secret_key, "server.secret_key", problems, base)
    if value is not None and len(value) < MIN_SECRET_KEY_LENGTH:
        problems.add(
            "server.secret_key",
            f"is too short; use at least {MIN_SECRET_KEY_LENGTH} random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
        return None
    return value.encode() if value is not None else None


def secret_key(settings: Settings) -> bytes:
    """The key that signs the identity backup cookie.

    ``[server] secret_key`` when set; otherwise one generated on first start and kept in
    ``secret_key`` next to the database (mode 0600, created atomically so processes
    starting together agree on it). An in-memory database gets a key for this process.
    """
    if settings.secret_key is not None:
        return settings.secret_key
    if str(settings.database) == ":memory:":
        return secrets.token_bytes(32)
    path = settings.database.parent / SIGNING_KEY_FILE
    try:
        return path.read_bytes().strip() or _create_secret(path)
    except FileNotFoundError:
        return _create_secret(path)


def _create_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32).encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
    try:
        os.link(temporary, path)  # fails if another process got there first: use theirs
    except FileExistsError:
        key = path.read_bytes().strip()
    finally:
        temporary.unlink(missing_ok=True)
    return key


def load(path: str | Path) -> Settings:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    return parse(text, source=str(path), base=path.parent.resolve())
