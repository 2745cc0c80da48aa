"""Hosts in network namespaces on one machine, and the commands of a multi-host run on them.

N namespaces, each with eth0 on a bridge in one more (:func:`hosts`), optionally throttled
(:func:`limit_bandwidth`) or linked through a relay that adds delay (:func:`delayed_hosts`);
addresses 10.231.x.0/24 and 10.232.x.0/24 exist only inside these namespaces (made and removed
here).  Needs root and iproute2 (:class:`NetnsUnavailable` otherwise).  Then the dealer and two
parties of a run as an organization would start them, one per host (:func:`host_files`,
:func:`host_commands`, :func:`run_hosts`).  Used by tests/test_multihost.py and
benchmarks/wan_check.py, so it lives in the product, importable by both.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path


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
        raise NetnsUnavailable(
            f"network namespaces cannot be made here ({type(exc).__name__}); "
            "needs root and iproute2"
        ) from None
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
        subprocess.run(
            ["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root"],
            capture_output=True,
        )
        if rate:
            _sh(
                "ip",
                "netns",
                "exec",
                ns,
                "tc",
                "qdisc",
                "add",
                "dev",
                "eth0",
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "256kbit",
                "latency",
                "2000ms",
            )


# ---------------------------------------------------------------- added delay without tc netem

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CLONE_NEWNET = 0x40000000


def _setns(path: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def _open_tun_in(ns: str) -> int:
    """A TUN device ``tun0`` created inside namespace ``ns``; returns its fd (the device lives
    as long as the fd is open).  The calling thread enters ``ns`` and comes back."""
    import fcntl
    import struct

    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        _setns(f"/var/run/netns/{ns}")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"tun0", IFF_TUN | IFF_NO_PI))
    finally:
        import ctypes

        ctypes.CDLL(None).setns(home, CLONE_NEWNET)
        os.close(home)
    return fd


class DelayRelay:
    """Hosts whose only link is a user-space relay that holds every IP packet for ``one_way_s``
    before delivering it (the round trip grows by 2 x one_way_s).  Stands in for ``tc netem``,
    which this kernel lacks.  Each host namespace gets ``tun0`` (MTU 65000, so TCP segments are
    up to ~64 KB and the relay handles few packets); the relay reads a packet from one host's
    TUN fd, reads its IPv4 destination and writes it to that host's fd when due.  Packet order
    per destination is kept (a FIFO per fd, equal delays)."""

    def __init__(self, namespaces: list[str], addrs: list[str], one_way_s: float) -> None:
        import threading

        self.one_way_s = one_way_s
        self.fds = [_open_tun_in(ns) for ns in namespaces]
        self.route = {bytes(int(o) for o in a.split(".")): fd for a, fd in zip(addrs, self.fds)}
        for ns, a in zip(namespaces, addrs):
            _sh("ip", "-n", ns, "addr", "add", f"{a}/24", "dev", "tun0")
            _sh("ip", "-n", ns, "link", "set", "tun0", "mtu", "65000", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        self._stop = threading.Event()
        self.packets = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import collections
        import select
        import time

        queue: collections.deque = collections.deque()  # (due, fd, packet), due times increase
        while not self._stop.is_set():
            wait = 0.05 if not queue else max(0.0, queue[0][0] - time.monotonic())
            ready, _, _ = select.select(self.fds, [], [], wait)
            now = time.monotonic()
            for fd in ready:
                pkt = os.read(fd, 65536)
                if len(pkt) >= 20 and pkt[0] >> 4 == 4:
                    dst = self.route.get(pkt[16:20])
                    if dst is not None:
                        queue.append((now + self.one_way_s, dst, pkt))
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                _, fd, pkt = queue.popleft()
                os.write(fd, pkt)
                self.packets += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in self.fds:
            os.close(fd)


@contextlib.contextmanager
def delayed_hosts(n: int, one_way_s: float):
    """Yield (namespace names, addresses) of n hosts linked through a :class:`DelayRelay`."""
    tag = f"d{os.getpid() % 100000}"
    names = [f"{tag}h{i}" for i in range(n)]
    subnet = 10 + os.getpid() % 200
    addrs = [f"10.232.{subnet}.{i + 1}" for i in range(n)]
    relay = None
    try:
        for ns in names:
            _sh("ip", "netns", "add", ns)
        relay = DelayRelay(names, addrs, one_way_s)
        yield names, addrs, relay
    except subprocess.CalledProcessError as exc:
        raise NetnsUnavailable(f"network namespaces cannot be made here ({exc.cmd[:3]})") from None
    finally:
        if relay is not None:
            relay.close()
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


# ---------------------------------------------------------------- a multi-host run's commands

RUN_TOML = """
[run]
parties = 2
provider = "ttp"
[model]
hidden_size = {hidden}
[train]
epochs = 1
batch_size = 20
"""


def mpcrnn_command() -> str:
    """The ``mpcrnn`` console script of this interpreter's environment."""
    return str(Path(sys.executable).with_name("mpcrnn"))


def keygen(folder: Path) -> str:
    """`mpcrnn keygen --out folder` as an organization runs it; returns the printed fingerprint."""
    res = subprocess.run(
        [mpcrnn_command(), "keygen", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return res.stdout.strip().splitlines()[0]


def host_files(tmp: Path, hidden: int = 4) -> list[str]:
    """Under ``tmp``: each host's identity (``key-dealer``, ``key-party0``, ``key-party1``), the
    shared ``run.toml`` (2 parties + dealer, 1 epoch, batch 20, GRU of ``hidden`` units) with
    their fingerprints pinned, and two parties' data files of 20 Japanese Vowels rows; returns
    the data files."""
    from mpcrnn import data as D

    # each host makes its identity; only the fingerprints travel, into the shared run file
    pins = {name: keygen(tmp / f"key-{name}") for name in ("dealer", "party0", "party1")}
    (tmp / "run.toml").write_text(
        RUN_TOML.format(hidden=hidden)
        + "[identities]\n"
        + "".join(f'{k} = "{v}"\n' for k, v in pins.items())
    )
    files = []
    for r, part in enumerate(D.split_rows(D.japanese_vowels("train"), [20, 20], 3)):
        D.write_npz(part, tmp / f"p{r}.npz")
        files.append(str(tmp / f"p{r}.npz"))
    return files


def host_commands(tmp: Path, files: list[str], prefix: list[list[str]]) -> list[list[str]]:
    """The dealer's and the two parties' command lines for :func:`host_files`' run, each after
    its ``prefix`` (e.g. ``["ip", "netns", "exec", host]``, or ``[]`` on this host)."""
    cfg, mpcrnn = str(tmp / "run.toml"), mpcrnn_command()
    common = ["--config", cfg, "--timeout", "60"]
    dealer = [mpcrnn, "dealer", *common, "--key", str(tmp / "key-dealer")]
    parties = [
        [mpcrnn, "party", *common, "--data", files[r], "--out", str(tmp / f"out{r}")]
        + ["--key", str(tmp / f"key-party{r}")]
        for r in (0, 1)
    ]
    return [prefix[0] + dealer, prefix[1] + parties[0], prefix[2] + parties[1]]


def run_hosts(
    cmds: list[list[str]], envs: list[dict], timeout: float = 240
) -> list[tuple[int, str, str]]:
    """Run every command at once, each with its environment added; (exit code, stdout,
    stderr) of each, in order.  All are killed if one outlives ``timeout``."""
    procs = [
        subprocess.Popen(
            c, env={**os.environ, **e}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c, e in zip(cmds, envs)
    ]
    out = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        out.append((p.returncode, o, e))
    return out
