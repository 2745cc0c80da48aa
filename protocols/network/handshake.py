"""Who is on the other end of a new connection: the hello, the pinned certificate, mutual TLS.

On a new connection the connecting side first sends, in clear, a hello (magic, the rank it
claims, the number of processes, the transport mode) and its certificate (public); the
accepting side checks that the certificate's SHA-256 is the one pinned for the claimed rank
BEFORE it sends anything back (:func:`accept_peer`), then answers with its own hello and
certificate, which the connecting side checks against the pin of the rank it meant to reach
(:func:`connect_peer`).  Both then run a TLS 1.3 handshake in which each side trusts exactly
the other's pinned certificate (``CERT_REQUIRED``, ``cadata=`` that one certificate), and
re-check the fingerprint of the certificate the handshake authenticated.  A tampered
certificate fails the fingerprint check; the right certificate without its private key fails
the handshake.  ``Trust.insecure``: the same hellos without certificates, and no TLS.

A connection that fails any check raises :class:`Refused` (the caller closes it, records why
in a :class:`Refusals` log of bounded size, and keeps waiting for the real peer).  Each
connection has ONE overall deadline, ``HANDSHAKE_S`` or the run's deadline if sooner, for its
hello, certificate and TLS handshake together (a :class:`Watchdog` shuts it at that instant):
a peer trickling one byte at a time cannot stretch it.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass

from protocols.network.identity import Identity, fingerprint, pem_to_der

# the bootstrap framing; stable across releases (WIRE_PROTOCOL is checked after it)
MAGIC = b"MPCRNN\x00\x01"
# magic, claimed rank, processes in the run, mode (1 TLS, 0 plain), certificate bytes
HELLO = struct.Struct("<8sIIBI")
MAX_CERT = 16 << 10
HANDSHAKE_S = 10.0  # longest a single unauthenticated connection may take to say who it is
RETRY_S = 0.1
# attempts at an address a process did not take from its run file (party 0's address book, a
# peer's heartbeat port): a hostile party 0 cannot make anyone hammer a host of its choosing
BOOK_ATTEMPTS = 5


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

    def hello(self, rank: int, total: int) -> bytes:
        """This process's hello and (TLS) its certificate, as sent on a new connection."""
        if self.insecure:
            return HELLO.pack(MAGIC, rank, total, self.mode, 0)
        cert = self.identity.cert_pem
        return HELLO.pack(MAGIC, rank, total, self.mode, len(cert)) + cert


class Refused(Exception):
    """A connection that is not the pinned peer it claims to be (or no peer at all)."""


class Refusals:
    """The refused connection attempts of a process, in bounded memory.  Attempts that differ
    only in their source port (a stranger retrying, 3000 junk connections from one host) are
    one entry with a count; the first ``KEEP`` distinct ones are kept with their details (rank
    claimed, fingerprint, address), the rest only counted.  Iterating gives one line per kept
    entry (``(N times)`` when repeated) and, past ``KEEP``, one line counting the rest."""

    KEEP = 32

    def __init__(self) -> None:
        self.kept: dict[str, int] = {}
        self.count = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def append(self, detail: str) -> bool:
        """Record one refusal; True if it is a new kept entry (the caller warns only then)."""
        key = _PORT.sub(r"\1", detail)
        with self._lock:
            self.count += 1
            if key in self.kept:
                self.kept[key] += 1
                return False
            if len(self.kept) < self.KEEP:
                self.kept[key] = 1
                return True
            self.dropped += 1
            return False

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        lines = [k if n == 1 else f"{k} ({n} times)" for k, n in self.kept.items()]
        if self.dropped:
            lines.append(f"{self.dropped} more refused connection attempt(s), counted only")
        return iter(lines)


_PORT = re.compile(r"(\b\d{1,3}(?:\.\d{1,3}){3}|\]):\d+")


class Watchdog:
    """Shuts a socket (both directions) at ``until`` (monotonic), ending any recv, send or TLS
    handshake blocked on it: one overall deadline per connection, however the peer trickles.
    It holds its own duplicate of the descriptor, so it still reaches the connection after
    ``ssl`` has wrapped (and detached) the original socket object."""

    def __init__(self, conn: socket.socket, until: float) -> None:
        self.fired = False
        self._dup = conn.dup()
        self._timer = threading.Timer(max(until - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            self._dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()
        close(self._dup)


def accept_peer(
    conn: socket.socket,
    rank: int,
    names: list[str],
    expected: set[int],
    trust: Trust,
    deadline: float,
) -> tuple[int, socket.socket]:
    """Accepting side: check the claimed rank and its pinned certificate before answering;
    returns the peer's rank and the (TLS) socket."""
    conn.settimeout(max(min(HANDSHAKE_S, deadline - time.monotonic()), 0.1))
    claimed, cert_pem, label, seen = _check_hello(conn, names, expected, trust)
    conn.sendall(trust.hello(rank, len(names)))
    if trust.insecure:
        return claimed, conn
    try:
        ctx = _tls_context(ssl.PROTOCOL_TLS_SERVER, trust, cert_pem)
        s = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        raise Refused(
            f"{label} with certificate {seen} failed the TLS handshake "
            f"(does it hold the key?): {brief(exc)}"
        ) from None
    except ValueError:
        raise Refused(f"{label}: its certificate is not a valid trust anchor") from None
    _check_peer(s, trust.pins[claimed], label)
    return claimed, s


def _check_hello(conn, names, expected: set[int], trust: Trust) -> tuple[int, bytes, str, str]:
    """Read a connecting peer's hello and certificate; ``(claimed rank, certificate, label,
    fingerprint seen)`` if it is a rank we wait for with its pinned certificate."""
    where = peer_address(conn)
    try:
        head = recv_exact(conn, HELLO.size)
    except (OSError, ValueError):
        raise Refused(f"a connection from {where} sent no mpcrnn hello") from None
    magic, claimed, total, mode, n_cert = HELLO.unpack(head)
    if magic != MAGIC:
        raise Refused(f"a connection from {where} sent no mpcrnn hello (junk)")
    who = names[claimed] if 0 <= claimed < len(names) else f"rank {claimed}"
    label = f"a connection from {where} claiming rank {claimed} ({who})"
    if total != len(names):
        raise Refused(f"{label}: expected a run of {len(names)} processes, got {total}")
    if n_cert > MAX_CERT:
        raise Refused(f"{label}: certificate of {n_cert} bytes (at most {MAX_CERT})")
    cert_pem = recv_exact(conn, n_cert) if n_cert else b""
    if mode != trust.mode:
        raise Refused(
            f"{label}: expected the {'plaintext' if trust.insecure else 'TLS'} transport, got the "
            f"{'TLS' if mode else 'plaintext'} one (--insecure-plaintext-transport must match)"
        )
    seen = _fingerprint_of(cert_pem) if cert_pem else "no certificate"
    if claimed not in expected:
        raise Refused(
            f"{label}, fingerprint {seen}: not a rank this process waits for "
            "(already connected or out of range)"
        )
    if not trust.insecure:
        if not cert_pem:
            raise Refused(f"{label} presented no certificate")
        if seen != trust.pins[claimed]:
            raise Refused(f"{label} presented certificate {seen}, not the one pinned for {who}")
    return claimed, cert_pem, label, seen


def connect_peer(
    target: int,
    addr: tuple[str, int],
    rank: int,
    names: list[str],
    trust: Trust,
    deadline: float,
    refused: list[str],
    told_by: str = "",
) -> socket.socket:
    """Connecting side: reach ``target`` at ``addr`` (retrying until the deadline), prove who we
    are, and check that the other end holds ``target``'s pinned key.  Nothing but our hello
    (and, with TLS, our public certificate) is sent before that check.

    told_by: where ``addr`` came from when not from the run file (``"party 0's address
    book"``): then at most ``BOOK_ATTEMPTS`` attempts, so a hostile source cannot make this
    process connect again and again to a host of its choosing.

    Raises:
        Late: the deadline passed, or the attempts at an address from ``told_by`` ran out (the
            detail says the last failure).
    """
    who = names[target]
    last, tries = "no answer", 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Late(f"could not reach {who} at {addr[0]}:{addr[1]}: {last}")
        if told_by and tries >= BOOK_ATTEMPTS:
            raise Late(
                f"gave up on {who} at {addr[0]}:{addr[1]} after {tries} attempts (the address "
                f"came from {told_by}): {last}"
            )
        tries += 1
        try:
            conn = socket.create_connection(addr, timeout=max(min(left, HANDSHAKE_S), 0.1))
        except OSError as exc:
            last = brief(exc)
            time.sleep(RETRY_S)
            continue
        until = min(time.monotonic() + HANDSHAKE_S, deadline)
        dog = Watchdog(conn, until)
        try:
            conn.settimeout(max(until - time.monotonic(), 0.1))
            return _client_handshake(conn, target, addr, rank, names, trust)
        except Refused as exc:
            refuse(conn, names[rank], exc, refused)
            last = str(exc)
        except (OSError, ValueError, struct.error) as exc:
            # closed: the other side refused us, or is not up yet
            close(conn)
            why = f"took over {HANDSHAKE_S:g} s" if dog.fired else brief(exc)
            last = f"{who} closed the connection during the handshake ({why})"
        finally:
            dog.cancel()
        time.sleep(5 * RETRY_S)  # refused: the other side may be waiting for the real peer


def _client_handshake(conn, target: int, addr, rank: int, names, trust: Trust) -> socket.socket:
    """Our hello, the answer's hello checked against ``target``'s pin, then TLS."""
    who, where = names[target], f"{addr[0]}:{addr[1]}"
    conn.sendall(trust.hello(rank, len(names)))
    magic, claimed, total, mode, n_cert = HELLO.unpack(recv_exact(conn, HELLO.size))
    if (
        magic != MAGIC
        or claimed != target
        or total != len(names)
        or mode != trust.mode
        or n_cert > MAX_CERT
    ):
        raise Refused(f"{where} answered as rank {claimed} of {total} (mode {mode}), not as {who}")
    cert_pem = recv_exact(conn, n_cert) if n_cert else b""
    if trust.insecure:
        return conn
    seen = _fingerprint_of(cert_pem) if cert_pem else "no certificate"
    if seen != trust.pins[target]:
        raise Refused(
            f"{where} answered as {who} with certificate {seen}, not the one pinned for {who}"
        )
    ctx = _tls_context(ssl.PROTOCOL_TLS_CLIENT, trust, cert_pem)
    s = ctx.wrap_socket(conn, server_side=False)
    _check_peer(s, trust.pins[target], f"{who} at {where}")
    return s


class Late(Exception):
    """The run's timeout passed while waiting for a peer (the detail names whom)."""


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
        close(s)
        raise Refused(
            f"{label}: the TLS handshake authenticated certificate {seen}, not the pinned one"
        )


def _fingerprint_of(cert_pem: bytes) -> str:
    try:
        return fingerprint(pem_to_der(cert_pem))
    except ValueError:
        return "an unreadable certificate"


def refuse(conn: socket.socket, me: str, exc: Exception, refused: Refusals) -> None:
    """Close a refused connection, record why, and warn on stderr (each new kind of refusal
    once: a retry from another port of the same host is only counted)."""
    close(conn)
    if refused.append(str(exc)):
        sys.stderr.write(f"warning: {me}: refused {exc}\n")
        sys.stderr.flush()


def peer_address(conn: socket.socket) -> str:
    """``host:port`` of a connection's other end, for refusals (never trusted for identity)."""
    try:
        host, port = conn.getpeername()[:2]
    except OSError:
        return "an unknown address"
    return f"{host}:{port}"


def recv_exact(s: socket.socket, n: int, deadline: float | None = None) -> bytes:
    """``n`` bytes; with ``deadline`` (monotonic), all of them by then (TimeoutError)."""
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{n} bytes not received in time")
            s.settimeout(left)
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return bytes(buf)


def close(s) -> None:
    try:
        s.close()
    except OSError:
        pass


def brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
