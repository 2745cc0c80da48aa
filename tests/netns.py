"""Hosts in network namespaces: :mod:`launch.netns` (shared with benchmarks/wan_check.py),
under the name the tests import."""

from launch.netns import NetnsUnavailable, delayed_hosts, hosts, limit_bandwidth

__all__ = ["NetnsUnavailable", "delayed_hosts", "hosts", "limit_bandwidth"]
