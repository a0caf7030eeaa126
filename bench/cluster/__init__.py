"""Reclaim on many hosts of one machine (network namespaces, HAProxy, PostgreSQL), and host
faults under load: `python -m bench cluster up|status|down|faults` (`bench.cluster.cli`)."""
