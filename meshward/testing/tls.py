"""TLS clients holding a workload's SVID, as the tests' callers use them."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from cryptography import x509

from meshward.ca.sds_files import BUNDLE_FILE, CERT_FILE, KEY_FILE


def client_context(svid_dir: Path) -> ssl.SSLContext:
    """A TLS client holding the SVID in ``svid_dir`` (cert.pem, key.pem, bundle.pem) and
    trusting its bundle; SPIFFE certificates carry no DNS name to check."""
    context = ssl.create_default_context(cafile=str(svid_dir / BUNDLE_FILE))
    context.check_hostname = False
    context.load_cert_chain(svid_dir / CERT_FILE, svid_dir / KEY_FILE)
    return context


def served_serial(port: int, svid_dir: Path) -> int:
    """The serial number of the certificate a listener on loopback presents in a new
    handshake with the client holding ``svid_dir``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client_context(svid_dir).wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError("the listener presented no certificate")
    return x509.load_der_x509_certificate(der).serial_number
