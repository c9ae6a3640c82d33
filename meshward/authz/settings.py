"""Settings of the ext_authz service: one object, read from a YAML file and the environment.

Environment variables override the file. They are prefixed ``MESHWARD_AUTHZ_`` and nest
with ``__``: ``MESHWARD_AUTHZ_HTTP__PORT=9191``, ``MESHWARD_AUTHZ_IDENTITY__MODE=xfcc``.
Every field is documented in ``docs/ext_authz.md``. Defaults are the safe ones: no identity
header is trusted, unknown destinations are denied, the service listens on loopback.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from meshward.policy.identity import SpiffeIdError, check_trust_domain

# Asymmetric algorithms only: a shared-secret (HS*) or unsigned token is never accepted.
SUPPORTED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# Paths the admin surface owns; the check prefix may not shadow them.
ADMIN_PATHS = ("/healthz", "/readyz", "/metrics", "/admin")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpSettings(_Section):
    """The HTTP listener: ext_authz HTTP mode under ``check_prefix``, admin endpoints beside."""

    host: str = "127.0.0.1"
    port: int = Field(9191, ge=0, le=65535)
    check_prefix: str = "/check"

    @field_validator("check_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or value == "/":
            raise ValueError("check_prefix starts with '/' and has no trailing '/', e.g. /check")
        if any(value == p or value.startswith(p + "/") for p in ADMIN_PATHS):
            raise ValueError(f"check_prefix may not be one of the admin paths {ADMIN_PATHS}")
        return value


class GrpcSettings(_Section):
    """The gRPC listener (``envoy.service.auth.v3.Authorization``); off unless enabled.
    Checks are CPU-bound under one interpreter lock: more ``workers`` than cores only adds
    contention (2 measured best on 2 cores)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9192, ge=0, le=65535)
    workers: int = Field(2, ge=1, le=64)


class PolicySettings(_Section):
    """Where the policy comes from: source files/directories, or one compiled bundle."""

    paths: list[Path] = Field(default_factory=list)
    bundle: Path | None = None
    watch: bool = True
    poll_interval_seconds: float = Field(2.0, ge=0.1, le=300)

    @model_validator(mode="after")
    def _one_source(self) -> PolicySettings:
        if bool(self.paths) == (self.bundle is not None):
            raise ValueError("set exactly one of policy.paths and policy.bundle")
        return self


class IdentitySettings(_Section):
    """Where the caller's SPIFFE ID comes from in HTTP mode.

    ``none`` trusts nothing (every caller is unauthenticated); ``header`` trusts ``header``,
    which Envoy must set from ``%DOWNSTREAM_PEER_URI_SAN%``; ``xfcc`` trusts the last element
    of ``x-forwarded-client-cert``, the one the local Envoy added (and, with ``xfcc_by``
    set, only if its ``By`` is that SPIFFE ID). gRPC mode always uses ``source.principal``,
    which Envoy fills from the TLS handshake. ``source_ip_header``, when set, is trusted for
    the caller's address in HTTP mode (Envoy sets it from
    ``%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%``); gRPC mode uses ``source.address``.
    """

    mode: Literal["none", "header", "xfcc"] = "none"
    header: str = "x-meshward-peer-uri-san"
    xfcc_by: str | None = None
    source_ip_header: str | None = None

    @field_validator("header", "source_ip_header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else None


class DestinationSettings(_Section):
    """How the protected service is named: in HTTP mode a header Envoy adds per listener,
    in gRPC mode a context extension of the route; else the workload's own SPIFFE ID (the
    URI SAN of the certificate it serves mTLS with) mapped through ``principals``; else
    the Host mapped through ``hosts``. Unknown names are denied. The port is the one
    Envoy reports (gRPC: the destination address; HTTP: ``port_header``, which Envoy sets
    from ``%DOWNSTREAM_LOCAL_PORT%``); with ``port_header`` null, the Host's port."""

    header: str | None = "x-meshward-destination"
    port_header: str | None = "x-meshward-destination-port"
    principal_header: str | None = "x-meshward-destination-principal"
    context_extension: str = "destination"
    principals: dict[str, str] = Field(default_factory=dict)
    hosts: dict[str, str] = Field(default_factory=dict)

    @field_validator("header", "port_header", "principal_header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else None

    @field_validator("hosts")
    @classmethod
    def _lower_hosts(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in value.items()}


class IssuerSettings(_Section):
    """One trusted JWT issuer and where its keys are: an ``issuer`` (the tokens' ``iss``),
    or a SPIFFE ``trust_domain`` whose JWT-SVIDs (which need carry no ``iss``) are known
    by their ``sub``, a SPIFFE ID in that trust domain."""

    issuer: str | None = None
    trust_domain: str | None = None
    audiences: list[str] = Field(min_length=1)
    jwks_file: Path | None = None
    jwks_url: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    jwks_cache_seconds: float = Field(300, ge=1, le=86400)

    @property
    def name(self) -> str:
        """The issuer, or the trust domain as a SPIFFE ID, for messages."""
        return self.issuer or f"spiffe://{self.trust_domain}"

    @model_validator(mode="after")
    def _check(self) -> IssuerSettings:
        if (self.issuer is None) == (self.trust_domain is None):
            raise ValueError("an issuer sets exactly one of issuer and trust_domain")
        if self.trust_domain is not None:
            try:
                check_trust_domain(self.trust_domain)
            except SpiffeIdError as exc:
                raise ValueError(f"trust_domain: {exc}") from None
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError(f"issuer {self.name}: set exactly one of jwks_file and jwks_url")
        bad = sorted(set(self.algorithms) - SUPPORTED_ALGORITHMS)
        if bad:
            raise ValueError(
                f"issuer {self.name}: algorithms {bad} are not allowed "
                f"(choose from {sorted(SUPPORTED_ALGORITHMS)})"
            )
        return self


class JwtSettings(_Section):
    """JWT verification: trusted issuers, clock skew, the verified-token cache."""

    issuers: list[IssuerSettings] = Field(default_factory=list)
    leeway_seconds: int = Field(30, ge=0, le=300)
    cache_size: int = Field(10000, ge=0, le=1_000_000)
    jwks_min_refresh_seconds: float = Field(10, ge=0, le=3600)
    jwks_fetch_timeout_seconds: float = Field(2.0, gt=0, le=30)


class ServiceSettings(_Section):
    """Per-destination behaviour that is not policy: JWT requirement and deny status."""

    require_jwt: bool = False
    deny_status: int = Field(403, ge=400, le=499)


class UpstreamHeaderSettings(_Section):
    """Headers set on allowed requests so the application sees who called. Any header
    named here that meshward does not set is removed, so a caller cannot forge it."""

    principal: str | None = "x-meshward-principal"
    claims: dict[str, str] = Field(default_factory=dict)  # claim name -> header name


class DecisionLogSettings(_Section):
    """The JSON-lines decision log: ``path`` is a file, ``-`` for stdout, or empty (off).
    Denials are always logged; allowed decisions with probability ``allow_sample_rate``."""

    path: str = "-"
    allow_sample_rate: float = Field(1.0, ge=0, le=1)


# Command-line flags, which win over the environment and the file (see load_settings).
_FLAGS: ContextVar[dict[str, Any] | None] = ContextVar("meshward_authz_flags", default=None)


class _FlagSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return _FLAGS.get() or {}


class AuthzSettings(BaseSettings):
    """Everything ``meshward serve`` needs."""

    model_config = SettingsConfigDict(
        env_prefix="MESHWARD_AUTHZ_", env_nested_delimiter="__", extra="forbid"
    )

    http: HttpSettings = Field(default_factory=HttpSettings)
    grpc: GrpcSettings = Field(default_factory=GrpcSettings)
    policy: PolicySettings
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    destination: DestinationSettings = Field(default_factory=DestinationSettings)
    jwt: JwtSettings = Field(default_factory=JwtSettings)
    services: dict[str, ServiceSettings] = Field(default_factory=dict)
    default_deny_status: int = Field(403, ge=400, le=499)
    upstream_headers: UpstreamHeaderSettings = Field(default_factory=UpstreamHeaderSettings)
    decision_log: DecisionLogSettings = Field(default_factory=DecisionLogSettings)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them, and
        # command-line flags override both.
        return (_FlagSource(settings_cls), env_settings, init_settings)


def load_settings(
    path: str | Path | None = None, flags: dict[str, Any] | None = None
) -> AuthzSettings:
    """Settings from a YAML (or JSON) file, overridden by the environment, overridden by
    ``flags`` (nested like the file: ``{"http": {"port": 9191}}``). Raises
    ``pydantic.ValidationError`` or ``ValueError`` with what is wrong."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: the settings file holds a mapping at the top level")
        data = _relative_to_file(loaded or {}, Path(path).parent)
    token = _FLAGS.set(flags)
    try:
        return AuthzSettings(**data)
    finally:
        _FLAGS.reset(token)


def _relative_to_file(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The file's relative paths (policy, bundle, JWKS files, decision log) read relative to
    the file, as its reader would, not to wherever the server was started. Paths from the
    environment and flags stay relative to the working directory."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str(base / value)
        return value

    policy = data.get("policy")
    if isinstance(policy, dict):
        if isinstance(policy.get("paths"), list):
            policy["paths"] = [fix(p) for p in policy["paths"]]
        if "bundle" in policy:
            policy["bundle"] = fix(policy["bundle"])
    jwt = data.get("jwt")
    issuers = jwt.get("issuers") if isinstance(jwt, dict) else None
    for issuer in issuers if isinstance(issuers, list) else ():
        if isinstance(issuer, dict) and "jwks_file" in issuer:
            issuer["jwks_file"] = fix(issuer["jwks_file"])
    log = data.get("decision_log")
    if isinstance(log, dict) and "path" in log and log["path"] != "-":
        log["path"] = fix(log["path"])
    return data
