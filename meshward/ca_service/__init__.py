"""The CA as a running service: workload rotation loop, HTTP API and metrics."""
