"""meshward's benchmarks: one command, ``python -m bench [engines|ca|authz|tooling|all]``.

- ``engines`` (the default): meshward's decision tables against Cedar (cedarpy), Rego
  (regorus) and pycasbin on one seeded workload (:mod:`bench.workload`), each peer
  translated from the same description (:mod:`bench.engines`) and checked to decide
  every request as meshward does before its timings count.
- ``ca``, ``authz``, ``tooling``: the suites in ``bench/ca_issuance.py``,
  ``bench/e2e_authz.py`` and ``bench/tooling.py``, each a module with ``main()``.

Results are printed and written to ``bench/RESULTS.md``, one section per suite.
"""
