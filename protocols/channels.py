"""The run's network: one authenticated, encrypted TCP connection between every two processes.

This module says which bytes go where.  Every byte between two processes of a run (data
parties and the dealer) travels on ONE connection between them, set up here once per run:

* **Mutual TLS 1.3** (Python's ``ssl``; no session tickets) with **pinned certificates**: the
  run file pins every rank's certificate fingerprint (:mod:`protocols.identity`).  On a new
  connection the connecting side first sends, in clear, a hello (magic, the rank it claims,
  the number of processes, the transport mode) and its certificate (public); the accepting side
  checks that the certificate's SHA-256 is the one pinned for the claimed rank BEFORE it sends
  anything back, then answers with its own hello and certificate, which the connecting side
  checks against the pin of the rank it meant to reach.  Both then run a TLS 1.3 handshake in
  which each side trusts exactly the other's pinned certificate (``CERT_REQUIRED``,
  ``cadata=`` that one certificate), and re-check the fingerprint of the certificate the
  handshake authenticated.  A tampered certificate fails the fingerprint check; the right
  certificate without its private key fails the handshake.  After that, every record is
  encrypted and authenticated (AES-GCM / ChaCha20-Poly1305): a changed byte is an integrity
  error (:class:`protocols.errors.IntegrityError`) naming the link, never wrong data.
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
  timeout (then the error lists the refused attempts).  A stranger can stop a run (denial of
  service is out of scope), never join it or redirect a link.
* ``insecure=True`` (``--insecure-plaintext-transport``): the same mesh and framing in clear
  TCP, without identities: anyone who can reach the rendezvous can take a rank, and anyone on
  the path reads every share and seed.  For tests and demos only; flagged loudly by the CLI.

Every wait (accept, connect, hello, handshake) obeys the run's timeout and names the peer.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import sys
import time
from dataclasses import dataclass, field

from protocols.errors import PartyError
from protocols.identity import Identity, fingerprint, pem_to_der

MAGIC = b"MPCRNN\x00\x01"  # the bootstrap framing below; stable across releases (WIRE_PROTOCOL is checked after it)
HELLO = struct.Struct(
    "<8sIIBI"
)  # magic, claimed rank, processes in the run, mode (1 TLS, 0 plain), certificate bytes
MAX_CERT = 16 << 10
MAX_JSON = 1 << 20
HANDSHAKE_S = 10.0  # longest a single unauthenticated connection may take to say who it is
RETRY_S = 0.1


@dataclass(frozen=True)
class Trust:
    """How this process authenticates: its own identity and every rank's pinned fingerprint
    (rank order, the dealer last), or ``insecure`` (no identities, no encryption)."""

    identity: Identity | None = None
    pins: tuple[str, ...] = ()
    insecure: bool = False

    @property
    def mode(self) -> int:
        return 0 if self.insecure else 1


@dataclass
class Mesh:
    """The connections of this process: ``socks[rank]``, TLS (or plain) sockets in blocking mode."""

    rank: int
    names: list[str]
    socks: dict[int, socket.socket]
    versions: list
    refused: list[str] = field(default_factory=list)
    secure: bool = True


class _Refused(Exception):
    """A connection that is not the pinned peer it claims to be (or no peer at all)."""


class _Late(Exception):
    """The run's timeout passed while waiting for a peer (the detail names whom)."""


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
    total = len(names)
    deadline = time.monotonic() + timeout_s
    me = names[rank]
    socks: dict[int, socket.socket] = {}
    refused: list[str] = []
    listener = None
    try:
        if rank == 0:
            listener = _listen_rendezvous(rendezvous)
        elif rank < total - 1:  # the highest rank only connects
            listener = _listen(host, 0)
        my_addr = "%s:%d" % listener.getsockname()[:2] if listener is not None else ""
        if rank == 0:
            inner = {}
            while len(socks) < total - 1:
                conn = _accept(
                    listener, deadline, me, lambda: _missing(names, socks, range(1, total)), refused
                )
                try:
                    peer, s = _server_side(
                        conn, rank, names, set(range(1, total)) - set(socks), trust, deadline
                    )
                    hello = _recv_json(s, deadline)
                    if not isinstance(hello, dict) or hello.get("rank") != peer:
                        raise _Refused(f"{names[peer]}'s inner hello names another rank")
                except _Refused as exc:
                    _refuse(conn, me, exc, refused)
                    continue
                except (OSError, ValueError) as exc:
                    _refuse(
                        conn,
                        me,
                        _Refused(f"connection failed during its hello ({_brief(exc)})"),
                        refused,
                    )
                    continue
                socks[peer], inner[peer] = s, hello
            versions = [wire_protocol] + [inner[r].get("wire") for r in range(1, total)]
            book = {
                "versions": versions,
                "addrs": {str(r): inner[r].get("addr", "") for r in range(1, total)},
            }
            for r in range(1, total):
                _send_json(socks[r], book)
            if any(v != versions[0] for v in versions):
                return Mesh(rank, names, socks, versions, refused, not trust.insecure)
        else:
            target = _resolve_rendezvous(rendezvous, deadline, me)
            s = _connect(0, target, rank, names, trust, deadline, refused)
            socks[0] = s
            _send_json(s, {"rank": rank, "wire": wire_protocol, "addr": my_addr})
            book = _recv_json(s, deadline)
            versions = list(book["versions"])
            if any(v != versions[0] for v in versions):
                # a process on another release: stop here; the caller names who (check_wire_protocol)
                return Mesh(rank, names, socks, versions, refused, not trust.insecure)
            for j in range(1, rank):  # connect to every lower rank but 0
                socks[j] = _connect(
                    j, _parse_addr(book["addrs"][str(j)]), rank, names, trust, deadline, refused
                )
            while len(socks) < total - 1:  # accept every higher rank
                conn = _accept(
                    listener,
                    deadline,
                    me,
                    lambda: _missing(names, socks, range(rank + 1, total)),
                    refused,
                )
                try:
                    peer, s = _server_side(
                        conn, rank, names, set(range(rank + 1, total)) - set(socks), trust, deadline
                    )
                except _Refused as exc:
                    _refuse(conn, me, exc, refused)
                    continue
                except (OSError, ValueError) as exc:
                    _refuse(
                        conn,
                        me,
                        _Refused(f"connection failed during its hello ({_brief(exc)})"),
                        refused,
                    )
                    continue
                socks[peer] = s
        for s in socks.values():
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(timeout_s)
        return Mesh(rank, names, socks, versions, refused, not trust.insecure)
    except (OSError, ValueError, KeyError, TypeError, _Late) as exc:
        for s in socks.values():
            _close(s)
        raise PartyError(
            f"rank {rank}: could not join the run at {rendezvous} within {timeout_s:g} s as {me} "
            f"({_brief(exc)}). Check that every party and the dealer use the same rendezvous, run file "
            "and world size and are running" + _refusals(refused)
        ) from None
    finally:
        if listener is not None:
            listener.close()


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
            fh.write("127.0.0.1:%d" % s.getsockname()[1])
        os.replace(tmp, path)  # atomic: a reader sees the whole address or nothing
        return s
    return _listen(*_parse_addr(rendezvous[len("tcp://") :]))


def _resolve_rendezvous(rendezvous: str, deadline: float, me: str) -> tuple[str, int]:
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
            raise _Late(f"no process took rank 0 (the rendezvous file {path} stayed empty)")
        time.sleep(RETRY_S)


def _parse_addr(text: str) -> tuple[str, int]:
    host, _, port = str(text).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {text[:60]!r}")
    return host.strip("[]"), int(port)


def _accept(listener, deadline: float, me: str, missing, refused: list[str]) -> socket.socket:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Late(f"waiting for {missing()}")
    listener.settimeout(left)
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        raise _Late(f"waiting for {missing()}") from None
    return conn


def _missing(names, socks, ranks) -> str:
    return ", ".join(names[r] for r in ranks if r not in socks) or "nobody"


# ------------------------------------------------------------------------------ handshakes


def _server_side(
    conn: socket.socket,
    rank: int,
    names: list[str],
    expected: set[int],
    trust: Trust,
    deadline: float,
) -> tuple[int, socket.socket]:
    """Accepting side: check the claimed rank and its pinned certificate before answering."""
    conn.settimeout(max(min(HANDSHAKE_S, deadline - time.monotonic()), 0.1))
    where = _peer_address(conn)
    try:
        head = _recv_exact(conn, HELLO.size)
    except (OSError, ValueError):
        raise _Refused(f"a connection from {where} sent no mpcrnn hello") from None
    magic, claimed, total, mode, n_cert = HELLO.unpack(head)
    if magic != MAGIC:
        raise _Refused(f"a connection from {where} sent no mpcrnn hello (junk)")
    who = names[claimed] if 0 <= claimed < len(names) else f"rank {claimed}"
    label = f"a connection from {where} claiming rank {claimed} ({who})"
    if total != len(names):
        raise _Refused(f"{label}: expected a run of {len(names)} processes, got {total}")
    if n_cert > MAX_CERT:
        raise _Refused(f"{label}: certificate of {n_cert} bytes (at most {MAX_CERT})")
    cert_pem = _recv_exact(conn, n_cert) if n_cert else b""
    if mode != trust.mode:
        raise _Refused(
            f"{label}: expected the {'plaintext' if trust.insecure else 'TLS'} transport, got the "
            f"{'TLS' if mode else 'plaintext'} one (--insecure-plaintext-transport must match)"
        )
    seen = _fingerprint_of(cert_pem) if cert_pem else "no certificate"
    if claimed not in expected:
        raise _Refused(
            f"{label}, fingerprint {seen}: not a rank this process waits for (already connected or out of range)"
        )
    if not trust.insecure:
        if not cert_pem:
            raise _Refused(f"{label} presented no certificate")
        if seen != trust.pins[claimed]:
            raise _Refused(f"{label} presented certificate {seen}, not the one pinned for {who}")
    conn.sendall(
        _hello(rank, len(names), trust) + (b"" if trust.insecure else trust.identity.cert_pem)
    )
    if trust.insecure:
        return claimed, conn
    try:
        s = _tls_context(ssl.PROTOCOL_TLS_SERVER, trust, cert_pem).wrap_socket(
            conn, server_side=True
        )
    except (ssl.SSLError, OSError) as exc:
        raise _Refused(
            f"{label} with certificate {seen} failed the TLS handshake (does it hold the key?): {_brief(exc)}"
        ) from None
    except ValueError:
        raise _Refused(f"{label}: its certificate is not a valid trust anchor") from None
    _check_peer(s, trust.pins[claimed], label)
    return claimed, s


def _connect(
    target: int,
    addr: tuple[str, int],
    rank: int,
    names: list[str],
    trust: Trust,
    deadline: float,
    refused: list[str],
) -> socket.socket:
    """Connecting side: reach ``target`` at ``addr`` (retrying until the deadline), prove who we
    are, and check that the other end holds ``target``'s pinned key."""
    me, who = names[rank], names[target]
    last = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Late(f"could not reach {who} at {addr[0]}:{addr[1]}: {last}")
        try:
            conn = socket.create_connection(addr, timeout=max(min(left, HANDSHAKE_S), 0.1))
        except OSError as exc:
            last = _brief(exc)
            time.sleep(RETRY_S)
            continue
        try:
            conn.settimeout(max(min(HANDSHAKE_S, deadline - time.monotonic()), 0.1))
            conn.sendall(
                _hello(rank, len(names), trust)
                + (b"" if trust.insecure else trust.identity.cert_pem)
            )
            magic, claimed, total, mode, n_cert = HELLO.unpack(_recv_exact(conn, HELLO.size))
            if (
                magic != MAGIC
                or claimed != target
                or total != len(names)
                or mode != trust.mode
                or n_cert > MAX_CERT
            ):
                raise _Refused(
                    f"{addr[0]}:{addr[1]} answered as rank {claimed} of {total} (mode {mode}), not as {who}"
                )
            cert_pem = _recv_exact(conn, n_cert) if n_cert else b""
            if trust.insecure:
                return conn
            seen = _fingerprint_of(cert_pem) if cert_pem else "no certificate"
            if seen != trust.pins[target]:
                raise _Refused(
                    f"{addr[0]}:{addr[1]} answered as {who} with certificate {seen}, not the one pinned for {who}"
                )
            s = _tls_context(ssl.PROTOCOL_TLS_CLIENT, trust, cert_pem).wrap_socket(
                conn, server_side=False
            )
            _check_peer(s, trust.pins[target], f"{who} at {addr[0]}:{addr[1]}")
            return s
        except _Refused as exc:
            _refuse(conn, me, exc, refused)
            last = str(exc)
        except (
            OSError,
            ValueError,
            struct.error,
        ) as exc:  # closed: the other side refused us, or is not up yet
            _close(conn)
            last = f"{who} closed the connection during the handshake ({_brief(exc)})"
        time.sleep(5 * RETRY_S)  # refused: the other side may be waiting for the real peer


def _tls_context(protocol, trust: Trust, peer_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(trust.identity.cert_path, trust.identity.key_path)
    ctx.load_verify_locations(cadata=peer_pem.decode("ascii"))
    if protocol == ssl.PROTOCOL_TLS_SERVER:
        ctx.num_tickets = 0
    return ctx


def _check_peer(s: ssl.SSLSocket, pin: str, label: str) -> None:
    der = s.getpeercert(binary_form=True)
    seen = fingerprint(der) if der else "no certificate"
    if seen != pin:
        _close(s)
        raise _Refused(
            f"{label}: the TLS handshake authenticated certificate {seen}, not the pinned one"
        )


def _fingerprint_of(cert_pem: bytes) -> str:
    try:
        return fingerprint(pem_to_der(cert_pem))
    except ValueError:
        return "an unreadable certificate"


def _hello(rank: int, total: int, trust: Trust) -> bytes:
    n_cert = 0 if trust.insecure else len(trust.identity.cert_pem)
    return HELLO.pack(MAGIC, rank, total, trust.mode, n_cert)


def _refuse(conn: socket.socket, me: str, exc: Exception, refused: list[str]) -> None:
    _close(conn)
    refused.append(str(exc))
    sys.stderr.write(f"warning: {me}: refused {exc}\n")
    sys.stderr.flush()


def _refusals(refused: list[str]) -> str:
    if not refused:
        return ""
    shown = "; ".join(refused[-3:])
    return f". Refused {len(refused)} connection attempt(s): {shown}"


def _peer_address(conn: socket.socket) -> str:
    try:
        return "%s:%d" % conn.getpeername()[:2]
    except OSError:
        return "an unknown address"


# ------------------------------------------------------------------------------ bootstrap messages


def _send_json(s: socket.socket, obj) -> None:
    body = json.dumps(obj).encode()
    s.sendall(struct.pack("<I", len(body)) + body)


def _recv_json(s: socket.socket, deadline: float):
    s.settimeout(max(deadline - time.monotonic(), 0.1))
    (n,) = struct.unpack("<I", _recv_exact(s, 4))
    if n > MAX_JSON:
        raise ValueError(f"bootstrap message of {n} bytes")
    return json.loads(_recv_exact(s, n))


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return bytes(buf)


def _close(s) -> None:
    try:
        s.close()
    except OSError:
        pass


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


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
            packed = fcntl.ioctl(
                s.fileno(), 0x8915, struct.pack("256s", ifname[:15].encode())
            )  # SIOCGIFADDR
            return socket.inet_ntoa(packed[20:24])
    if rendezvous.startswith("file://"):
        return "127.0.0.1"
    host, port = _parse_addr(rendezvous[len("tcp://") :])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return s.getsockname()[0]
