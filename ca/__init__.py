"""meshward's identity authority: SPIFFE IDs, X.509-SVIDs, JWT-SVIDs, trust bundles, rotation.

An authority issues, a bundle publishes, a rotator renews::

    from meshward.ca import FileStore, Rotator, SpiffeId, TrustDomainCa, Workload

    ca = TrustDomainCa.init(FileStore(path), "example.org")
    svid = ca.issue_x509(SpiffeId.parse("spiffe://example.org/ns/default/sa/web"))
    pem, jwks = ca.bundle().to_pem(), ca.bundle().to_jwks()
    Rotator(ca, [Workload(svid.spiffe_id, sds_dir)]).run_once()
"""

from .authority import Authority, create_root, load_authority
from .bundle import TrustBundle
from .csr import approve_csr
from .errors import (
    AuthorityError,
    CaError,
    CsrRefused,
    InvalidSpiffeId,
    JwtSvidInvalid,
    KeyRejected,
    StoreError,
)
from .jwt_svid import JwtSvid, issue_jwt_svid, validate_jwt_svid
from .keys import KeyAlgorithm
from .manager import CaSettings, TrustDomainCa
from .rotation import RenewalPolicy, RotationReport, Rotator, Workload
from .spiffe_id import SpiffeId
from .store import FileStore, Store
from .x509_svid import X509Svid, issue_x509_svid, issue_x509_svid_with_key

__all__ = [
    "Authority",
    "AuthorityError",
    "CaError",
    "CaSettings",
    "CsrRefused",
    "FileStore",
    "InvalidSpiffeId",
    "JwtSvid",
    "JwtSvidInvalid",
    "KeyAlgorithm",
    "KeyRejected",
    "RenewalPolicy",
    "RotationReport",
    "Rotator",
    "SpiffeId",
    "Store",
    "StoreError",
    "TrustBundle",
    "TrustDomainCa",
    "Workload",
    "X509Svid",
    "approve_csr",
    "create_root",
    "issue_jwt_svid",
    "issue_x509_svid",
    "issue_x509_svid_with_key",
    "load_authority",
    "validate_jwt_svid",
]
