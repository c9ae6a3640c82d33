"""The ext_authz service: Envoy asks, meshward decides.

``settings`` (one object, file + environment) -> ``holder`` (the policy, reloaded and
swapped atomically) -> ``core.Authorizer`` (destination, identity, JWT, decision, metrics,
decision log) <- transports: ``http_app`` (bare ASGI, in front of the FastAPI
``admin_app``) and ``grpc_server``. ``server`` wires them together for ``meshward
serve``; ``envoy_config`` writes Envoy's side.
"""
