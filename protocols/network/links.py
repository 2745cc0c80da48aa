"""The data path between the processes of a run: framed messages over the mesh's connections.

:mod:`protocols.network.channels` opens ONE connection (mutual TLS 1.3 with pinned certificates, or
plain TCP with ``--insecure-plaintext-transport``) between every two processes; this module
moves bytes over them: masked openings and gathers between data parties (:meth:`Links.exchange`,
:meth:`Links.send`, :meth:`Links.recv_from`), and everything CrypTen's communicator and the
dealer send (:mod:`protocols.network.communicator`).

Why not torch.distributed / gloo: this torch build's gloo has no TLS, its TCPStore binds every
interface without authentication, and each gloo message is handed to gloo's own I/O thread and
back, which on a 2-core machine dominated a small model's step (the link benchmark,
``benchmarks/``, compares the two).

Messages: an 8-byte length header, then the payload; both sides know what they expect, so a
length mismatch (a protocol desynchronization) raises instead of returning garbage.  A message
that fits twice in the kernel's send buffer goes out with one blocking ``sendall`` (why that
cannot deadlock: :class:`Links`); larger ones run through one ``selectors`` loop (all sends and
receives of a round in flight at once, so two parties sending each other megabytes cannot
deadlock on full socket buffers); the sockets are non-blocking there, and a TLS socket is read
until it reports ``SSLWantReadError`` (bytes OpenSSL already decrypted are invisible to select).
Posted receives (:meth:`Links.post_recv`: the dealer's answers that party 0 collects later) are
served in order: any later receive from that peer first reads every earlier posted one.

Every wait has the run's ``timeout_s``; a closed connection or a timeout raises
:class:`PartyError` naming the peer ("lost contact with party k"); a record that fails TLS
authentication (a changed, inserted or replayed byte) raises :class:`IntegrityError` naming the
link: nothing received on a link after that is ever used; a message of another length than
the one expected (the processes' protocol steps disagree) raises :class:`ProtocolError`.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import struct
import time
from collections import deque

import torch

from protocols.errors import IntegrityError, PartyError, ProtocolError

HEADER = struct.Struct("<q")
SEND_BUFFER_BYTES = 4 << 20  # asked for; the kernel caps it (net.core.wmem_max)
CHUNK = 1 << 20  # bytes per non-blocking send (a TLS write must be retried with the same bytes)
MAX_MESSAGE = 1 << 31  # a variable-length message (an object) longer than this is a protocol error
_RETRY = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


class Ticket:
    """A posted receive of ``n`` payload bytes from one peer (see :meth:`Links.post_recv`)."""

    __slots__ = ("peer", "n", "data")

    def __init__(self, peer: int, n: int) -> None:
        self.peer, self.n, self.data = peer, n, None


class Links:
    """This process's open connections to every other process (``peers[rank] = socket``).

    ``names[r]`` names rank r in errors; ``parties`` are the data parties' ranks (the dealer,
    when present, is the last rank and takes part in no exchange)."""

    def __init__(
        self,
        rank: int,
        world_size: int,
        peers: dict[int, socket.socket],
        timeout_s: float,
        names: list[str] | None = None,
        secure: bool = False,
        heartbeat=None,
    ) -> None:
        self.rank, self.world_size, self.peers, self.timeout_s = rank, world_size, peers, timeout_s
        self.names = names or [f"party {r}" for r in range(max([rank, *peers], default=0) + 1)]
        self.secure = secure
        self.parties = sorted(p for p in peers if p < world_size)
        for s in peers.values():
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            s.settimeout(timeout_s)  # every blocking call waits at most timeout_s
        # Messages up to `small` bytes go out with a plain blocking sendall before receiving
        # (cheaper than the selectors loop for small messages).  Safe: a party sends its
        # exchange message k+1 only after receiving every peer's message k,
        # so at most two exchange messages are ever unread on a link, and twice `small` (plus
        # TLS record overhead, < 1/64) fits in the kernel's send buffer: an exchange's sendall
        # never waits.  Gathers only flow to party 0, whose sends are exchange messages.  Larger
        # messages use the selectors loop.
        usable = min(
            (s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2 for s in peers.values()),
            default=0,
        )
        self.small = max(usable // 2 - usable // 64 - 1024, 0)
        self._sel = selectors.DefaultSelector()
        self._posted: dict[int, deque] = {}
        self.heartbeat = heartbeat  # protocols.network.heartbeat.Heartbeat: names a stopped peer
        self.offline: Links | None = None  # --provider he: its own links (same heartbeat)

    def exchange(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Send ``flat`` (int64, contiguous) to every other data party and receive theirs (ONE
        round); returns the received tensors in rank order of the peers."""
        payload = _bytes(flat)
        others = [p for p in self.parties if p != self.rank]
        if HEADER.size + len(payload) <= self.small:
            message = HEADER.pack(len(payload)) + payload
            for p in others:
                self._sendall(p, message)
            return [_tensor(self._recv(p, len(payload)), flat) for p in others]
        got = self._transfer({p: payload for p in others}, {p: len(payload) for p in others})
        return [_tensor(got[p], flat) for p in others]

    def send(self, dst: int, flat: torch.Tensor) -> None:
        self.send_bytes(dst, _bytes(flat))

    def send_bytes(self, dst: int, payload: bytes) -> None:
        if HEADER.size + len(payload) <= self.small:
            self._sendall(dst, HEADER.pack(len(payload)) + payload)
        else:
            # _transfer first reads the answers still posted from dst (party 0 and the dealer,
            # a prefetched plan outstanding): else both could wait on full socket buffers
            self._transfer({dst: payload}, {})

    def recv_from(self, srcs: list[int], like: torch.Tensor) -> list[torch.Tensor]:
        n = like.numel() * like.element_size()
        return [_tensor(self._recv(p, n), like) for p in srcs]

    def recv_bytes(self, src: int, n: int) -> bytearray:
        """The next message from ``src``, which must hold exactly ``n`` payload bytes."""
        return self._recv(src, n)

    def recv_message(self, src: int) -> bytearray:
        """The next message from ``src``, of any length (an object; at most MAX_MESSAGE bytes)."""
        self._drain(src)
        head = self._read(src, HEADER.size)
        (n,) = HEADER.unpack(head)
        if not 0 <= n <= MAX_MESSAGE:
            raise ProtocolError(
                f"{self.names[self.rank]}: {self.names[src]} sent a message header of {n} bytes "
                "(the processes' protocol steps disagree)"
            )
        return self._read(src, n)

    def post_recv(self, src: int, n: int) -> Ticket:
        """Post the receive of the next message from ``src`` (``n`` payload bytes) without
        waiting; :meth:`wait` returns it.  Receives from one peer complete in posting order."""
        ticket = Ticket(src, n)
        self._posted.setdefault(src, deque()).append(ticket)
        return ticket

    def wait(self, ticket: Ticket) -> bytearray:
        q = self._posted.get(ticket.peer)
        while ticket.data is None:
            first = q.popleft()
            first.data = self._recv_now(first.peer, first.n)
        return ticket.data

    def transfer(
        self, sends: dict[int, bytes], recvs: dict[int, int]
    ) -> dict[int, bytearray | memoryview]:
        """Many sends and fixed-size receives at once (one round)."""
        small = all(HEADER.size + len(b) <= self.small for b in sends.values())
        if small:
            for p, b in sends.items():
                self._sendall(p, HEADER.pack(len(b)) + b)
            return {p: self._recv(p, n) for p, n in recvs.items()}
        return self._transfer(sends, recvs)

    def _drain(self, p: int) -> None:
        q = self._posted.get(p)
        while q:
            first = q.popleft()
            first.data = self._recv_now(first.peer, first.n)

    def _sendall(self, p: int, message: bytes) -> None:
        try:
            self.peers[p].sendall(message)
        except OSError as exc:
            raise self._failure(p, exc, f"not reading for {self.timeout_s:g} s") from None

    def _recv(self, p: int, n: int) -> bytearray:
        self._drain(p)
        return self._recv_now(p, n)

    def _recv_now(self, p: int, n: int) -> bytearray:
        buf = self._read(p, HEADER.size + n)
        self._check_length(p, buf)
        return buf[HEADER.size :]

    def _read(self, p: int, n: int) -> bytearray:
        buf = bytearray(n)
        view, got, sock = memoryview(buf), 0, self.peers[p]
        try:
            while got < n:
                k = sock.recv_into(view[got:], n - got)
                if k == 0:
                    raise self._lost(p, "connection closed")
                got += k
        except OSError as exc:
            raise self._failure(p, exc, f"no data for {self.timeout_s:g} s") from None
        self._heard(p)
        return buf

    def _transfer(
        self, sends: dict[int, bytes], recvs: dict[int, int]
    ) -> dict[int, bytearray | memoryview]:
        """Every send and receive of one round in flight at once, over one selectors loop."""
        for p in set(sends) | set(recvs):  # posted receives first (in order); see send_bytes
            self._drain(p)
        rnd = _Round(sends, recvs)
        sel = self._sel
        for p in rnd.involved:
            self.peers[p].setblocking(False)
        try:
            for p in rnd.involved:
                # first try: no select (TLS may hold decrypted bytes)
                self._step(rnd, p, self.peers[p], rnd.wanted(p))
                if rnd.wanted(p):
                    sel.register(self.peers[p], rnd.wanted(p), p)
            deadline = time.monotonic() + self.timeout_s
            while sel.get_map():
                events = sel.select(max(deadline - time.monotonic(), 0.0))
                if not events:
                    waiting = sorted(key.data for key in sel.get_map().values())
                    raise self._lost(waiting[0], f"no data for {self.timeout_s:g} s")
                deadline = time.monotonic() + self.timeout_s  # progress: wait again up to timeout_s
                for key, mask in events:
                    p, sock = key.data, key.fileobj
                    self._step(rnd, p, sock, mask)
                    left = rnd.wanted(p)
                    if not left:
                        sel.unregister(sock)
                    elif left != key.events:
                        sel.modify(sock, left, p)
        finally:
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
            for p in rnd.involved:
                try:
                    self.peers[p].settimeout(self.timeout_s)
                except OSError:
                    pass
        for p, buf in rnd.inbox.items():
            self._check_length(p, buf)
        # views, not copies: a copy of a large payload (hundreds of MB of HE ciphertexts) costs
        # seconds of page faults
        return {p: memoryview(buf)[HEADER.size :] for p, buf in rnd.inbox.items()}

    def _step(self, rnd: _Round, p: int, sock, mask: int) -> None:
        """Move what the socket to ``p`` allows now: one chunk out, everything readable in."""
        try:
            if mask & selectors.EVENT_WRITE and p in rnd.out and rnd.sent[p] < len(rnd.out[p]):
                try:
                    rnd.sent[p] += sock.send(rnd.out[p][rnd.sent[p] : rnd.sent[p] + CHUNK])
                except _RETRY:
                    pass
            if mask & selectors.EVENT_READ and p in rnd.inbox:
                inbox, view = rnd.inbox[p], rnd.views[p]
                try:  # read until the socket (and OpenSSL's buffer) has nothing more
                    while rnd.got[p] < len(inbox):
                        n = sock.recv_into(view[rnd.got[p] :], len(inbox) - rnd.got[p])
                        if n == 0:
                            raise self._lost(p, "connection closed")
                        rnd.got[p] += n
                except _RETRY:
                    pass
                self._heard(p)
        except OSError as exc:
            raise self._failure(p, exc, f"no data for {self.timeout_s:g} s") from None

    def close(self) -> None:
        if self.offline is not None:
            self.offline.heartbeat = None  # closed below, once
            self.offline.close()
            self.offline = None
        if self.heartbeat is not None:
            self.heartbeat.close()
        self._sel.close()
        for s in self.peers.values():
            try:
                s.close()
            except OSError:
                pass
        self.peers = {}

    def _failure(self, p: int, exc: OSError, timed_out: str) -> PartyError | IntegrityError:
        """What a socket error on the link to ``p`` means: a timeout (``timed_out`` says
        which), a closed or broken connection (:class:`PartyError`), or a record that failed
        TLS authentication (:class:`IntegrityError`)."""
        if isinstance(exc, TimeoutError):
            return self._lost(p, timed_out)
        if isinstance(exc, ssl.SSLError) and not isinstance(
            exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)
        ):
            return self._integrity(p, exc)
        return self._lost(p, exc)

    def _lost(self, p: int, why: object) -> PartyError:
        return self._stopped_peer() or PartyError(
            f"{self.names[self.rank]}: lost contact with {self.names[p]} ({why})"
        )

    def _stopped_peer(self) -> PartyError | IntegrityError | None:
        """The heartbeat's verdict (a peer stopped, or a heartbeat record failed TLS
        authentication: it shut these links to wake this wait)."""
        if self.heartbeat is None:
            return None
        tampered = self.heartbeat.integrity_line()
        if tampered:
            return IntegrityError(f"{self.names[self.rank]}: {tampered}")
        verdict = self.heartbeat.verdict(settle=True)
        return PartyError(f"{self.names[self.rank]}: {verdict}") if verdict else None

    def _heard(self, p: int) -> None:
        if self.heartbeat is not None:
            self.heartbeat.heard_data(p)

    def _integrity(self, p: int, exc: BaseException) -> PartyError | IntegrityError:
        stopped = self._stopped_peer()
        if stopped is not None:
            return stopped
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return IntegrityError(
            f"{self.names[self.rank]}: link {self.names[min(self.rank, p)]} <-> "
            f"{self.names[max(self.rank, p)]} failed the TLS integrity check ({reason}); "
            "the run stops, nothing received on that link after it is used"
        )

    def _check_length(self, p: int, buf: bytearray) -> None:
        (n,) = HEADER.unpack_from(buf)
        if n != len(buf) - HEADER.size:
            raise ProtocolError(
                f"{self.names[self.rank]}: {self.names[p]} sent {n} bytes where "
                f"{len(buf) - HEADER.size} were expected (the processes' protocol steps disagree)"
            )


class _Round:
    """The progress of one :meth:`Links._transfer`: framed messages out, buffers in."""

    def __init__(self, sends: dict[int, bytes], recvs: dict[int, int]) -> None:
        self.out = {p: memoryview(HEADER.pack(len(b)) + b) for p, b in sends.items()}
        self.sent = dict.fromkeys(self.out, 0)
        self.inbox = {p: bytearray(HEADER.size + n) for p, n in recvs.items()}
        self.views = {p: memoryview(b) for p, b in self.inbox.items()}
        self.got = dict.fromkeys(self.inbox, 0)
        self.involved = set(self.out) | set(self.inbox)

    def wanted(self, p: int) -> int:
        """The selector events ``p``'s socket still waits for (0: done)."""
        write = p in self.out and self.sent[p] < len(self.out[p])
        read = p in self.inbox and self.got[p] < len(self.inbox[p])
        return (selectors.EVENT_WRITE if write else 0) | (selectors.EVENT_READ if read else 0)


def _bytes(flat: torch.Tensor) -> bytes:
    return flat.contiguous().numpy().tobytes()


def _tensor(buf: bytearray, like: torch.Tensor) -> torch.Tensor:
    return torch.frombuffer(buf, dtype=like.dtype).reshape(like.shape)
