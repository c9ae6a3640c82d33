"""Fixtures for the ext_authz tests: real settings, policy files, a real JWT issuer."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from meshward.authz.core import Authorizer
from meshward.authz.decision_log import DecisionLog
from meshward.authz.holder import PolicyHolder
from meshward.authz.metrics import AuthzMetrics
from meshward.authz.settings import AuthzSettings
from meshward.testing.jwt_issuer import TestIssuer

POLICY = """
trust_domain "cluster.local"

service reviews.default {
  @id("reviews-read")
  allow GET /reviews/{*} from "ns/default/sa/productpage"

  @id("reviews-write")
  allow POST /reviews/{**} from any when jwt.scope contains "reviews:write"

  @id("public")
  allow GET /public/{**} from any

  @id("admin-only-ops")
  deny * /admin/{**} unless source.namespace == "ops"

  @id("audit-probe")
  audit deny GET /public/probe from any
}

service api.default {
  @id("api-any")
  allow * /{**} from any
}
"""

MakeAuthorizer = Callable[..., Authorizer]
AsgiCall = Callable[..., httpx2.Response]


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "main.policy").write_text(textwrap.dedent(POLICY))
    return directory


def settings_for(policy_dir: Path, **sections: Any) -> AuthzSettings:
    """Settings for tests: the given policy directory, decision log off unless asked."""
    sections.setdefault("decision_log", {"path": ""})
    return AuthzSettings(policy={"paths": [policy_dir], "watch": False}, **sections)


@pytest.fixture
def make_authorizer(
    policy_dir: Path, issuer: TestIssuer, tmp_path: Path
) -> Iterator[MakeAuthorizer]:
    """A factory for real authorizers over ``policy_dir``; ``jwt=True`` trusts ``issuer``."""
    made: list[Authorizer] = []

    def make(*, jwt: bool = False, load: bool = True, **sections: Any) -> Authorizer:
        if jwt:
            jwks = issuer.write_jwks(tmp_path / "jwks.json")
            sections["jwt"] = {
                "issuers": [
                    {
                        "issuer": issuer.issuer,
                        "audiences": [issuer.audience],
                        "jwks_file": str(jwks),
                        "algorithms": ["ES256"],
                    }
                ],
                "jwks_min_refresh_seconds": 0,
                **sections.get("jwt", {}),
            }
        settings = settings_for(policy_dir, **sections)
        metrics = AuthzMetrics()
        holder = PolicyHolder(settings.policy, on_reload=metrics.reload)
        if load:
            holder.reload()
        authorizer = Authorizer(settings, holder, metrics, DecisionLog(settings.decision_log))
        made.append(authorizer)
        return authorizer

    yield make
    for authorizer in made:
        authorizer.decision_log.close()


@pytest.fixture
def asgi_call() -> AsgiCall:
    """``call(app, method, url, headers=None)``: one request to an ASGI app, in process."""

    def call(
        app: Any, method: str, url: str, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        async def go() -> httpx2.Response:
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://reviews:9080") as c:
                return await c.request(method, url, headers=headers)

        return asyncio.run(go())

    return call
