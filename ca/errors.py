"""Exceptions raised by the CA library; each carries a short machine-readable code."""

from __future__ import annotations


class CaError(Exception):
    """Base class of every error the CA library raises on bad input or bad state."""

    code = "ca-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidSpiffeId(CaError, ValueError):
    """A string is not a valid SPIFFE ID; ``code`` names the rule that was broken."""

    code = "invalid-spiffe-id"


class KeyRejected(CaError):
    """A public key is too weak or of a type the CA does not issue for."""

    code = "unsupported-key"


class CsrRefused(CaError):
    """A certificate signing request was refused; ``code`` says why."""

    code = "csr-refused"


class JwtSvidInvalid(CaError):
    """A JWT-SVID failed validation; ``code`` names the check that failed."""

    code = "invalid-jwt-svid"


class AuthorityError(CaError):
    """A CA certificate or key is unusable, or a lifecycle step is not possible now."""

    code = "authority-error"


class StoreError(CaError):
    """Persistent CA state is missing or inconsistent."""

    code = "store-error"
