"""Direct TCP links between the data parties: the transport of every masked opening and gather.

Why not torch.distributed / gloo point to point: each gloo message is handed to gloo's own
I/O thread and back, and on a 2-core machine those thread hand-offs dominate a small model's
step.  Measured here, 3 parties exchanging a message with each other (median of 350):

    ================  ==========  ===========
    message           gloo p2p    these links
    ================  ==========  ===========
    8 bytes           0.21 ms     0.04 ms
    87 KB             0.36 ms     0.11 ms
    ================  ==========  ===========

(gloo's ring all-reduce, CrypTen's opening: 0.27 and 1.05 ms.)  The dealer link and CrypTen's
own traffic stay on gloo.

Set-up, once per run, right after the torch.distributed rendezvous (:func:`connect`): every
data party listens on an ephemeral port of the address it reaches the rendezvous from
(127.0.0.1 for a ``file://`` rendezvous, the interface named by ``GLOO_SOCKET_IFNAME`` if set),
and publishes ``host:port`` and a random token in the rendezvous store.  Party i connects to
every party j < i and sends ``(i, token_i)``; j accepts and checks the token against the store,
so a stray connection cannot take a party's place (the same trust as the rendezvous itself:
there is no encryption, as with gloo; the README's threat model).

Messages: an 8-byte length header, then the payload; both sides know what they expect, so a
length mismatch (a protocol desynchronization) raises instead of returning garbage.  A message
that fits twice in the kernel's send buffer goes out with one blocking ``sendall`` (why that
cannot deadlock: :class:`Links`); larger ones run through one ``selectors`` loop (all sends
and receives of a round in flight at once, so two parties sending each other megabytes cannot
deadlock on full socket buffers).  Every wait has the run's ``timeout_s``; a closed connection
or a timeout raises :class:`PartyError` naming the peer ("lost contact with party k").
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time

import torch

from protocols.errors import PartyError

HEADER = struct.Struct("<q")
TOKEN_BYTES = 16
SEND_BUFFER_BYTES = 4 << 20  # asked for; the kernel caps it (net.core.wmem_max)


class Links:
    """This party's open connections to every other data party (``peers[rank] = socket``)."""

    def __init__(self, rank: int, world_size: int, peers: dict[int, socket.socket], timeout_s: float) -> None:
        self.rank, self.world_size, self.peers, self.timeout_s = rank, world_size, peers, timeout_s
        for s in peers.values():
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            s.settimeout(timeout_s)  # every blocking call waits at most timeout_s
        # Messages up to `small` bytes go out with a plain blocking sendall before receiving:
        # 3.5x faster than the selectors loop for 8 bytes (0.033 vs 0.117 ms, 3 parties).  Safe:
        # a party sends its exchange message k+1 only after receiving every peer's message k,
        # so at most two exchange messages are ever unread on a link, and twice `small` fits in
        # the kernel's send buffer: an exchange's sendall never waits.  Gathers only flow to
        # party 0, whose sends are exchange messages.  Larger messages use the selectors loop.
        usable = min((s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2 for s in peers.values()), default=0)
        self.small = usable // 2
        self._sel = selectors.DefaultSelector()

    def exchange(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Send ``flat`` (int64, contiguous) to every other party and receive theirs (ONE round);
        returns the received tensors in rank order of the peers."""
        payload = _bytes(flat)
        others = sorted(self.peers)
        if HEADER.size + len(payload) <= self.small:
            message = HEADER.pack(len(payload)) + payload
            for p in others:
                self._sendall(p, message)
            return [_tensor(self._recv(p, len(payload)), flat) for p in others]
        got = self._transfer({p: payload for p in others}, {p: len(payload) for p in others})
        return [_tensor(got[p], flat) for p in others]

    def send(self, dst: int, flat: torch.Tensor) -> None:
        payload = _bytes(flat)
        if HEADER.size + len(payload) <= self.small:
            self._sendall(dst, HEADER.pack(len(payload)) + payload)
        else:
            self._transfer({dst: payload}, {})

    def recv_from(self, srcs: list[int], like: torch.Tensor) -> list[torch.Tensor]:
        n = like.numel() * like.element_size()
        return [_tensor(self._recv(p, n), like) for p in srcs]

    def _sendall(self, p: int, message: bytes) -> None:
        try:
            self.peers[p].sendall(message)
        except socket.timeout:
            raise _lost(self.rank, p, f"not reading for {self.timeout_s:g} s") from None
        except OSError as exc:
            raise _lost(self.rank, p, exc) from None

    def _recv(self, p: int, n: int) -> bytearray:
        buf = bytearray(HEADER.size + n)
        view, got, sock = memoryview(buf), 0, self.peers[p]
        try:
            while got < len(buf):
                k = sock.recv_into(view[got:])
                if k == 0:
                    raise _lost(self.rank, p, "connection closed")
                got += k
        except socket.timeout:
            raise _lost(self.rank, p, f"no data for {self.timeout_s:g} s") from None
        except OSError as exc:
            raise _lost(self.rank, p, exc) from None
        _check_length(self.rank, p, buf)
        return buf[HEADER.size:]

    def _transfer(self, sends: dict[int, bytes], recvs: dict[int, int]) -> dict[int, bytearray]:
        out = {p: memoryview(HEADER.pack(len(b)) + b) for p, b in sends.items()}
        sent = dict.fromkeys(out, 0)
        inbox = {p: bytearray(HEADER.size + n) for p, n in recvs.items()}
        views = {p: memoryview(b) for p, b in inbox.items()}
        got = dict.fromkeys(inbox, 0)
        sel = self._sel
        for p in set(out) | set(inbox):
            sel.register(self.peers[p], (selectors.EVENT_WRITE if p in out else 0) | (selectors.EVENT_READ if p in inbox else 0), p)
        deadline = time.monotonic() + self.timeout_s
        try:
            while sel.get_map():
                events = sel.select(max(deadline - time.monotonic(), 0.0))
                if not events:
                    waiting = sorted(p for p in set(out) | set(inbox) if self.peers[p] in sel.get_map())
                    raise _lost(self.rank, waiting[0], f"no data for {self.timeout_s:g} s")
                for key, mask in events:
                    p, sock = key.data, key.fileobj
                    try:
                        if mask & selectors.EVENT_WRITE and p in out and sent[p] < len(out[p]):
                            sent[p] += sock.send(out[p][sent[p]:])
                        if mask & selectors.EVENT_READ and p in inbox and got[p] < len(inbox[p]):
                            n = sock.recv_into(views[p][got[p]:])
                            if n == 0:
                                raise _lost(self.rank, p, "connection closed")
                            got[p] += n
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:
                        raise _lost(self.rank, p, exc) from None
                    events_left = (selectors.EVENT_WRITE if p in out and sent[p] < len(out[p]) else 0) | (
                        selectors.EVENT_READ if p in inbox and got[p] < len(inbox[p]) else 0)
                    if not events_left:
                        sel.unregister(sock)
                    elif events_left != key.events:
                        sel.modify(sock, events_left, p)
        finally:
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
        for p, buf in inbox.items():
            _check_length(self.rank, p, buf)
        return {p: buf[HEADER.size:] for p, buf in inbox.items()}

    def close(self) -> None:
        self._sel.close()
        for s in self.peers.values():
            try:
                s.close()
            except OSError:
                pass
        self.peers = {}


def _lost(rank: int, p: int, why: object) -> PartyError:
    return PartyError(f"party {rank}: lost contact with party {p} ({why})")


def _check_length(rank: int, p: int, buf: bytearray) -> None:
    (n,) = HEADER.unpack_from(buf)
    if n != len(buf) - HEADER.size:
        raise PartyError(f"party {rank}: party {p} sent {n} bytes where {len(buf) - HEADER.size} were "
                         "expected (the parties' protocol steps disagree)")


def _bytes(flat: torch.Tensor) -> bytes:
    return flat.contiguous().numpy().tobytes()


def _tensor(buf: bytearray, like: torch.Tensor) -> torch.Tensor:
    return torch.frombuffer(buf, dtype=like.dtype).reshape(like.shape)


def local_address(rendezvous: str) -> str:
    """The address other parties can reach this one at: GLOO_SOCKET_IFNAME's address if set,
    else the local end of the route to the rendezvous host (127.0.0.1 for ``file://``)."""
    ifname = os.environ.get("GLOO_SOCKET_IFNAME")
    if ifname:
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", ifname[:15].encode()))  # SIOCGIFADDR
            return socket.inet_ntoa(packed[20:24])
    if rendezvous.startswith("file://"):
        return "127.0.0.1"
    hostport = rendezvous[len("tcp://"):]
    host, _, port = hostport.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host.strip("[]"), int(port)))
        return s.getsockname()[0]


def connect(rank: int, world_size: int, store, host: str, timeout_s: float) -> Links:
    """Open the links of data party ``rank`` (see the module docstring).  ``store``: the
    rendezvous's key-value store (every party's address and token go through it)."""
    deadline = time.monotonic() + timeout_s
    token = os.urandom(TOKEN_BYTES)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    peers: dict[int, socket.socket] = {}
    try:
        listener.bind((host, 0))
        listener.listen(world_size)
        listener.settimeout(timeout_s)
        store.set(f"mpcrnn/links/{rank}", f"{host}:{listener.getsockname()[1]}:{token.hex()}")
        for p in range(rank):  # connect to every lower rank
            h, port, _ = store.get(f"mpcrnn/links/{p}").decode().split(":")
            s = socket.create_connection((h, int(port)), timeout=max(deadline - time.monotonic(), 0.1))
            s.sendall(struct.pack("<q", rank) + token)
            peers[p] = s
        for _ in range(rank + 1, world_size):  # accept every higher rank
            s, _addr = listener.accept()
            s.settimeout(max(deadline - time.monotonic(), 0.1))
            hello = _recv_exact(s, 8 + TOKEN_BYTES)
            (p,) = struct.unpack("<q", hello[:8])
            if not rank < p < world_size or p in peers:
                s.close()
                raise PartyError(f"party {rank}: a link claimed to be party {p}; expected one of "
                                 f"{rank + 1}..{world_size - 1} not yet connected")
            expected = bytes.fromhex(store.get(f"mpcrnn/links/{p}").decode().split(":")[2])
            if hello[8:] != expected:
                s.close()
                raise PartyError(f"party {rank}: a link claiming to be party {p} did not present party {p}'s token")
            peers[p] = s
        for s in peers.values():
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, RuntimeError) as exc:  # refused, timed out, or the store timed out
        for s in peers.values():
            s.close()
        raise PartyError(f"party {rank}: could not link to the other parties within {timeout_s:g} s ({exc})") from None
    finally:
        listener.close()
    return Links(rank, world_size, peers, timeout_s)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed during the link handshake")
        buf += chunk
    return bytes(buf)
