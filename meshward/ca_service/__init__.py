"""The CA as a running service: workload rotation loop, HTTP API and metrics."""

# The audience of bootstrap tokens (``meshward ca issue --bootstrap-token``), which the
# HTTP API accepts in place of an SVID. Only the CLI issues them: no service endpoint
# does, or a token could keep minting its successor.
BOOTSTRAP_AUDIENCE = "meshward-ca-bootstrap"
