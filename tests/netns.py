"""Test hosts in network namespaces: N namespaces, each with eth0 on a bridge in one more.

Addresses 10.231.x.0/24 exist only inside these namespaces (made and removed here).  Used by
tests/test_multihost.py and benchmarks/wan_check.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess


class NetnsUnavailable(RuntimeError):
    pass


def _sh(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def hosts(n: int = 3):
    """Yield (namespace names, addresses); everything is removed on exit."""
    tag = f"m{os.getpid() % 100000}"
    bridge_ns, names = f"{tag}br", [f"{tag}h{i}" for i in range(n)]
    try:
        _sh("ip", "netns", "add", bridge_ns)
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise NetnsUnavailable(f"network namespaces cannot be made here ({type(exc).__name__}); needs root and iproute2") from None
    subnet = 10 + os.getpid() % 200
    try:
        _sh("ip", "-n", bridge_ns, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", bridge_ns, "link", "set", "br0", "up")
        addrs = []
        for i, ns in enumerate(names):
            _sh("ip", "netns", "add", ns)
            _sh("ip", "link", "add", f"{tag}v{i}", "type", "veth", "peer", "name", f"{tag}b{i}")
            _sh("ip", "link", "set", f"{tag}v{i}", "netns", ns)
            _sh("ip", "link", "set", f"{tag}b{i}", "netns", bridge_ns)
            _sh("ip", "-n", ns, "link", "set", f"{tag}v{i}", "name", "eth0")
            addr = f"10.231.{subnet}.{i + 1}"
            _sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", bridge_ns, "link", "set", f"{tag}b{i}", "master", "br0")
            _sh("ip", "-n", bridge_ns, "link", "set", f"{tag}b{i}", "up")
            addrs.append(addr)
        yield names, addrs
    finally:
        for ns in names + [bridge_ns]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def limit_bandwidth(namespaces: list[str], rate: str | None) -> None:
    """tc tbf on each host's eth0 (rate like '100mbit'); None removes the limit."""
    for ns in namespaces:
        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root"], capture_output=True)
        if rate:
            _sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate,
                "burst", "256kbit", "latency", "2000ms")
