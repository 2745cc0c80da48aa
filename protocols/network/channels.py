"""The run's network: one authenticated, encrypted TCP connection between every two processes.

This module says which bytes go where.  Every byte between two processes of a run (data
parties and the dealer) travels on ONE connection between them, set up here once per run:

* **Mutual TLS 1.3** (Python's ``ssl``; no session tickets) with **pinned certificates**: the
  run file pins every rank's certificate fingerprint (:mod:`protocols.network.identity`); every new
  connection is checked against the pin of the rank it claims before anything is sent back, then
  authenticated by a TLS 1.3 handshake that trusts exactly that certificate
  (:mod:`protocols.network.handshake`).  After that, every record is encrypted and authenticated
  (AES-GCM / ChaCha20-Poly1305): a changed byte is an integrity error
  (:class:`protocols.errors.IntegrityError`) naming the link, never wrong data.
* **Rendezvous without a store**: rank 0 listens on exactly the address the rendezvous names
  (``tcp://host:port``; for ``file:///path``, one machine: 127.0.0.1 on a free port, written
  atomically into that file, which is untrusted like any address).  Every other process
  connects to it (retrying until the run timeout), authenticates as above and sends an inner
  hello (rank, wire protocol, the address it listens on for links).  When every rank has
  joined, rank 0 sends everyone, over those authenticated channels, the address book and every
  process's wire protocol.  Then processes connect pairwise (the higher rank connects to the
  lower), again pin-checked.  The connection to rank 0 IS the link between rank k and rank 0.
* **Membership**: a connection whose certificate is not the pinned one for the rank it claims,
  that has no certificate, claims a rank already connected, or is not an mpcrnn hello at all,
  is refused before anything is sent to it; a warning on stderr names the rank claimed and the
  fingerprint seen, and the honest process keeps waiting for the real one until the run's
  timeout (then the error lists the refused attempts).  Every accepted connection says who it
  is in its own thread, within one overall deadline (``HANDSHAKE_S`` or the run's, if sooner),
  so a slow stranger holds up nobody; at most ``MAX_PENDING`` at once, and refusals are kept
  in bounded memory (:class:`protocols.network.handshake.Refusals`).  A stranger can stop a
  run by flooding it (denial of service is out of scope), never join it or redirect a link.
* ``insecure=True`` (``--insecure-plaintext-transport``): the same mesh and framing in clear
  TCP, without identities: anyone who can reach the rendezvous can take a rank, and anyone on
  the path reads every share and seed.  For tests and demos only; flagged loudly by the CLI.

Every wait (accept, connect, hello, handshake) obeys the run's timeout and names the peer.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from protocols.errors import PartyError
from protocols.network.handshake import (
    HANDSHAKE_S,
    HELLO,  # noqa: F401 - the hello's layout, for tests that read captured traffic
    MAGIC,  # noqa: F401
    RETRY_S,
    Late,
    Refusals,
    Refused,
    Trust,
    Watchdog,
    accept_peer,
    brief,
    close,
    connect_peer,
    peer_address,
    recv_exact,
    refuse,
)

MAX_JSON = 1 << 20
MAX_PENDING = 64  # connections saying who they are at once; more are refused straight away
POLL_S = 0.05

__all__ = ["Mesh", "Trust", "local_address", "open_mesh"]


@dataclass
class Mesh:
    """The connections of this process: ``socks[rank]``, TLS (or plain) sockets in blocking mode."""

    rank: int
    names: list[str]
    socks: dict[int, socket.socket]
    versions: list
    refused: Refusals = field(default_factory=Refusals)
    secure: bool = True


def open_mesh(
    rank: int,
    names: list[str],
    rendezvous: str,
    timeout_s: float,
    trust: Trust,
    wire_protocol: int,
    host: str,
) -> Mesh:
    """Connect this process to every other process of the run (see the module docstring).

    ``names[r]`` is how rank r is called in messages ("party 1", "dealer"); ``host`` the
    address this process listens on for links (ranks > 0).

    Raises:
        PartyError: the mesh was not complete within ``timeout_s`` (naming who is missing and
            every refused attempt), or the rendezvous address could not be bound.
    """
    mesh = Mesh(rank, names, {}, [], Refusals(), not trust.insecure)
    deadline = time.monotonic() + timeout_s
    listener = None
    try:
        if rank == 0:
            listener = _listen_rendezvous(rendezvous)
            _join_as_rank0(mesh, listener, trust, wire_protocol, deadline)
        else:
            if rank < len(names) - 1:  # the highest rank only connects
                listener = _listen(host, 0)
            _join_as_member(mesh, listener, rendezvous, trust, wire_protocol, deadline)
        if all(v == mesh.versions[0] for v in mesh.versions):
            for s in mesh.socks.values():
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(timeout_s)
        # else: a process on another release: stop here; the caller names who
        # (protocols.network.parties.check_wire_protocol)
        return mesh
    except (OSError, ValueError, KeyError, TypeError, Late) as exc:
        for s in mesh.socks.values():
            close(s)
        raise PartyError(
            f"rank {rank}: could not join the run at {rendezvous} within {timeout_s:g} s as "
            f"{names[rank]} ({brief(exc)}). Check that every party and the dealer use the same "
            "rendezvous, run file and world size and are running" + _refusals(mesh.refused)
        ) from None
    finally:
        if listener is not None:
            listener.close()


def _join_as_rank0(mesh: Mesh, listener, trust: Trust, wire_protocol: int, deadline: float):
    """Accept every other rank with its inner hello, then send everyone the address book and
    every process's wire protocol."""
    total = len(mesh.names)
    inner = _accept_peers(mesh, listener, range(1, total), trust, deadline, inner_hello=True)
    mesh.versions = [wire_protocol] + [inner[r].get("wire") for r in range(1, total)]
    book = {
        "versions": mesh.versions,
        "addrs": {str(r): inner[r].get("addr", "") for r in range(1, total)},
    }
    for r in range(1, total):
        _send_json(mesh.socks[r], book)


def _join_as_member(mesh: Mesh, listener, rendezvous, trust, wire_protocol, deadline) -> None:
    """Connect to rank 0 and say hello; with the address book, connect to every lower rank
    and accept every higher one (unless a process runs another release)."""
    rank, names = mesh.rank, mesh.names
    my_addr = ""
    if listener is not None:
        host, port = listener.getsockname()[:2]
        my_addr = f"{host}:{port}"
    target = _resolve_rendezvous(rendezvous, deadline)
    s = connect_peer(0, target, rank, names, trust, deadline, mesh.refused)
    mesh.socks[0] = s
    _send_json(s, {"rank": rank, "wire": wire_protocol, "addr": my_addr})
    book = _recv_json(s, deadline)
    mesh.versions = list(book["versions"])
    if any(v != mesh.versions[0] for v in mesh.versions):
        return
    for j in range(1, rank):  # connect to every lower rank but 0
        addr = _parse_addr(book["addrs"][str(j)])
        told = "party 0's address book"
        mesh.socks[j] = connect_peer(j, addr, rank, names, trust, deadline, mesh.refused, told)
    _accept_peers(mesh, listener, range(rank + 1, len(names)), trust, deadline)


def _accept_peers(mesh: Mesh, listener, ranks, trust, deadline, inner_hello=False) -> dict:
    """Accept, authenticate and keep a connection from each of ``ranks``; refuse (and keep
    waiting past) any other.  Each connection says who it is in its own thread
    (:func:`_identify`), so none waits for another.  Returns each peer's inner hello
    (``inner_hello``: rank 0)."""
    me, names, socks = mesh.names[mesh.rank], mesh.names, mesh.socks
    inner: dict = {}
    done: queue.Queue = queue.Queue()
    pending: dict[int, str] = {}  # id -> address of connections still saying who they are
    while not set(ranks) <= set(socks):
        while not done.empty():
            key, conn, peer, s, hello = done.get()
            pending.pop(key, None)
            if isinstance(peer, Refused) or peer in socks:
                why = peer if isinstance(peer, Refused) else Refused(f"{names[peer]} twice")
                refuse(s or conn, me, why, mesh.refused)
            else:
                socks[peer], inner[peer] = s, hello
        if set(ranks) <= set(socks):
            break
        conn = _accept(listener, deadline, lambda: _missing(names, socks, ranks, pending))
        if conn is None:
            continue
        if len(pending) >= MAX_PENDING:
            busy = Refused(f"a connection from {peer_address(conn)}: {MAX_PENDING} already pending")
            refuse(conn, me, busy, mesh.refused)
            continue
        pending[id(conn)] = peer_address(conn)
        expected = set(ranks) - set(socks)
        args = (conn, mesh, expected, trust, deadline, inner_hello, done)
        threading.Thread(target=_identify, args=args, daemon=True).start()
    return inner


def _identify(conn, mesh: Mesh, expected, trust, deadline, inner_hello, done) -> None:
    """One accepted connection's hello, certificate, TLS handshake and (rank 0) inner hello,
    all within one deadline: ``HANDSHAKE_S`` or the run's, whichever comes first.  Puts
    ``(key, connection, rank or Refused, socket, inner hello)`` into ``done``; a refused
    connection is closed here already."""
    where, limit = peer_address(conn), min(HANDSHAKE_S, deadline - time.monotonic())
    dog, s, key = Watchdog(conn, time.monotonic() + limit), None, id(conn)
    until = time.monotonic() + limit
    try:
        peer, s = accept_peer(conn, mesh.rank, mesh.names, expected, trust, until)
        hello = _recv_json(s, until) if inner_hello else None
        if inner_hello and (not isinstance(hello, dict) or hello.get("rank") != peer):
            raise Refused(f"{mesh.names[peer]}'s inner hello names another rank")
        done.put((key, conn, peer, s, hello))
        return
    except Refused as exc:
        why = exc
    except (OSError, ValueError, struct.error) as exc:
        detail = f"did not finish within {limit:.0f} s" if dog.fired else brief(exc)
        why = Refused(f"a connection from {where} failed during its hello ({detail})")
    finally:
        dog.cancel()
    close(s or conn)
    done.put((key, conn, why, s, None))


# ------------------------------------------------------------------------------ listening


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(64)
    return s


def _listen_rendezvous(rendezvous: str) -> socket.socket:
    """Rank 0: bind exactly the rendezvous address (never every interface)."""
    if rendezvous.startswith("file://"):
        path = rendezvous[len("file://") :]
        s = _listen("127.0.0.1", 0)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"127.0.0.1:{s.getsockname()[1]}")
        os.replace(tmp, path)  # atomic: a reader sees the whole address or nothing
        return s
    return _listen(*_parse_addr(rendezvous[len("tcp://") :]))


def _resolve_rendezvous(rendezvous: str, deadline: float) -> tuple[str, int]:
    if not rendezvous.startswith("file://"):
        return _parse_addr(rendezvous[len("tcp://") :])
    path = rendezvous[len("file://") :]
    while True:
        try:
            with open(path) as fh:
                text = fh.read().strip()
            if text:
                return _parse_addr(text)
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise Late(f"no process took rank 0 (the rendezvous file {path} stayed empty)")
        time.sleep(RETRY_S)


def _parse_addr(text: str) -> tuple[str, int]:
    host, _, port = str(text).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {text[:60]!r}")
    return host.strip("[]"), int(port)


def _accept(listener, deadline: float, missing) -> socket.socket | None:
    """A new connection, or None after ``POLL_S`` (so finished handshakes are taken up)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Late(f"waiting for {missing()}")
    listener.settimeout(min(left, POLL_S))
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        return None
    return conn


def _missing(names, socks, ranks, pending=None) -> str:
    who = ", ".join(names[r] for r in ranks if r not in socks) or "nobody"
    if pending:
        shown = ", ".join(list(pending.values())[:3])
        who += f" ({len(pending)} connection(s) still saying who they are: from {shown})"
    return who


def _refusals(refused) -> str:
    if not len(refused):
        return ""
    shown = "; ".join(list(refused)[:3])
    return f". Refused {len(refused)} connection attempt(s): {shown}"


# ------------------------------------------------------------------------------ bootstrap messages


def _send_json(s: socket.socket, obj) -> None:
    body = json.dumps(obj).encode()
    s.sendall(struct.pack("<I", len(body)) + body)


def _recv_json(s: socket.socket, deadline: float):
    """One bootstrap message, all of it by ``deadline``."""
    (n,) = struct.unpack("<I", recv_exact(s, 4, deadline))
    if n > MAX_JSON:
        raise ValueError(f"bootstrap message of {n} bytes")
    return json.loads(recv_exact(s, n, deadline))


def local_address(rendezvous: str) -> str:
    """The address other processes reach this one at: ``MPCRNN_LINK_ADDR`` or
    ``GLOO_SOCKET_IFNAME``'s address if set, else the local end of the route to the rendezvous
    host (127.0.0.1 for ``file://``)."""
    explicit = os.environ.get("MPCRNN_LINK_ADDR")
    if explicit:
        return explicit
    ifname = os.environ.get("MPCRNN_LINK_IFNAME") or os.environ.get("GLOO_SOCKET_IFNAME")
    if ifname:
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            request = struct.pack("256s", ifname[:15].encode())
            packed = fcntl.ioctl(s.fileno(), 0x8915, request)  # SIOCGIFADDR
            return socket.inet_ntoa(packed[20:24])
    if rendezvous.startswith("file://"):
        return "127.0.0.1"
    host, port = _parse_addr(rendezvous[len("tcp://") :])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return s.getsockname()[0]
