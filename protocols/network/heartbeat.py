"""Liveness: a heartbeat per peer, on connections of its own, so a stopped process is named.

A process that is stopped (SIGSTOP, a debugger, a frozen VM) keeps its TCP connections open:
its kernel still acknowledges, so its peers see neither an error nor an end of stream, only
silence, and the data path cannot tell that silence from a slow step until the run's timeout.
So every two processes of a run also share a second connection that carries nothing but
heartbeats, served by one thread per process that never waits on the training:

* every ``INTERVAL_S`` the thread sends every peer one heartbeat (authenticated and encrypted
  like any link byte: the connection is made with the same pinned mutual TLS as the data
  links, :mod:`protocols.network.channels`): a frame of one little-endian uint16 per rank of
  the run, how many milliseconds ago this process last heard *directly* from that rank (a
  heartbeat or a data message; ``0xFFFF``: not within 65 s);
* it reads whatever its peers sent; a peer is heard from when any byte of its heartbeat
  arrives, when a message arrives on its data link (:meth:`Heartbeat.heard_data`, called by
  :class:`protocols.network.links.Links` on every message it receives), or when a third
  process's heartbeat says it heard from it (vouching: the dealer's links to parties 1..
  carry no data after the seeds, so a dropped heartbeat there is answered by the parties,
  which hear from both).  Only direct evidence is passed on, so a stopped process is vouched
  for by nobody.  A peer not heard from in any of these ways for ``LIMIT_S`` seconds while
  its connection stayed open has **stopped**:
  the thread records which one (:attr:`Heartbeat.stopped`), calls ``on_stop(rank)`` (the party
  shuts its data links so its own blocked wait ends at once), and exits.  A peer whose
  connection ends (exit, crash) is not "stopped": the data links report it as lost contact.
* a heartbeat record that fails TLS authentication (a changed or injected byte) is an
  integrity failure like one on a data link: the thread records the peer
  (:attr:`Heartbeat.tampered`), calls ``on_stop`` and exits, and the data links' next wait
  raises :class:`protocols.errors.IntegrityError` naming the heartbeat link.

Detection: a stopped peer is named after at most ``LIMIT_S + INTERVAL_S`` = 22 s, whatever the
run's ``--timeout`` (which bounds slow steps, not liveness).  A live process whose heartbeat
thread gets no CPU for ``LIMIT_S`` seconds (a machine swapping hard) is taken for stopped.

Set-up (:func:`open_heartbeats`), after the data mesh: every rank but the highest listens on
an ephemeral port of its link host; rank j tells every higher rank its address over their
(authenticated) data link; the higher rank connects with the channel handshake (pins checked
both ways).  Nothing is sent on a heartbeat connection but single bytes; nothing received on
one is ever used but its arrival time.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable

INTERVAL_S = 2.0  # one heartbeat frame to every peer this often
LIMIT_S = 20.0  # a peer silent this long, its connection open, has stopped
_UNKNOWN = 0xFFFF  # a heartbeat frame's age for a rank not heard from directly within 65 s
_READ_MAX = 1 << 16  # bytes taken from one peer per wake-up (a flooding peer cannot pin us)
_AGAIN = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


class Heartbeat:
    """The heartbeat thread of one process over ``socks[rank]`` (one connection per peer).

    ``names[r]`` names rank r in :meth:`verdict`.  ``on_stop(rank)`` runs in the heartbeat
    thread when a peer is found stopped."""

    def __init__(
        self,
        socks: dict[int, socket.socket],
        names: list[str],
        on_stop: Callable[[int], None] | None = None,
        interval_s: float = INTERVAL_S,
        limit_s: float = LIMIT_S,
        rank: int | None = None,
    ) -> None:
        self.socks, self.names, self.on_stop = dict(socks), names, on_stop
        self.interval_s, self.limit_s, self.rank = interval_s, limit_s, rank
        self.stopped: int | None = None  # the rank found stopped, if any
        self.silent_s = 0.0  # how long it had been silent then
        self.tampered: int | None = None  # the rank whose heartbeat failed TLS authentication
        self.tamper_reason = ""
        self._data_seen: dict[int, float] = {}
        self._vouched: dict[int, float] = {}  # latest time a third process heard from a rank
        self._frame = struct.Struct(f"<{len(names)}H")
        self._halt = threading.Event()
        self._found = threading.Event()
        self._seen: dict[int, float] = {}
        self._live: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="mpcrnn-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        for s in self.socks.values():
            s.setblocking(False)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close the heartbeat connections (at the end of a run)."""
        self._halt.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * self.interval_s)
        for s in self.socks.values():
            try:
                s.close()
            except OSError:
                pass

    def verdict(self, settle: bool = False) -> str | None:
        """One line naming the stopped peer, or None.

        settle: when some peer is already silent for ``limit_s / 2`` (a suspect), wait until
        the heartbeat decides (at most ``limit_s``).  A process that loses contact with a peer
        asks this first: that peer may have stopped itself because a third one stopped, and the
        headline must name the stopped one."""
        if settle and self.stopped is None and self._suspect():
            self._found.wait(self.limit_s)
        if self.stopped is None:
            return None
        return (
            f"{self.names[self.stopped]} stopped responding: no heartbeat for "
            f"{self.silent_s:.0f} s while its connection stayed open (a stopped or frozen "
            "process); stopping"
        )

    def heard_data(self, rank: int) -> None:
        """A message from ``rank`` arrived on its data link (evidence that it runs)."""
        self._data_seen[rank] = time.monotonic()

    def integrity_line(self) -> str | None:
        """One line naming the heartbeat link that failed TLS authentication, or None."""
        if self.tampered is None:
            return None
        ends = sorted(r for r in (self.rank, self.tampered) if r is not None)
        link = " <-> ".join(self.names[r] for r in ends)
        return (
            f"heartbeat link {link} failed the TLS integrity check ({self.tamper_reason}); "
            "the run stops"
        )

    def _suspect(self) -> bool:
        now = time.monotonic()
        return any(now - self._last(r) > self.limit_s / 2 for r in list(self._live))

    def _direct(self, r: int) -> float:
        """When this process last heard from ``r`` itself (heartbeat or data)."""
        return max(self._seen.get(r, 0.0), self._data_seen.get(r, 0.0))

    def _last(self, r: int) -> float:
        """When anyone (this process, or a third one vouching) last heard from ``r``."""
        return max(self._direct(r), self._vouched.get(r, 0.0))

    def _beat(self, now: float) -> bytes:
        """This process's heartbeat frame (see the module docstring)."""
        ages = []
        for r in range(self._frame.size // 2):
            t = now if r == self.rank else self._direct(r)
            ms = int((now - t) * 1000) if t else _UNKNOWN
            ages.append(min(ms, _UNKNOWN))
        return self._frame.pack(*ages)

    def _take_frames(self, sender: int, buf: bytearray, now: float) -> None:
        """Every complete frame in ``buf`` (from ``sender``): what it vouches for."""
        size = self._frame.size
        while len(buf) >= size:
            ages = self._frame.unpack_from(buf)
            del buf[:size]
            for r, ms in enumerate(ages):
                if ms != _UNKNOWN and r not in (sender, self.rank):
                    self._vouched[r] = max(self._vouched.get(r, 0.0), now - ms / 1000)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for r, s in self.socks.items():
            sel.register(s, selectors.EVENT_READ, r)
        now = time.monotonic()
        seen = self._seen = dict.fromkeys(self.socks, now)
        live = self._live = set(self.socks)
        inbox = {r: bytearray() for r in self.socks}
        outbox = {r: bytearray() for r in self.socks}  # a frame's unsent rest goes out first
        last_sent = 0.0
        try:
            while live and not self._halt.is_set():
                now = time.monotonic()
                gone = []
                if now - last_sent >= self.interval_s:
                    beat = self._beat(now)
                    for r in sorted(live):
                        if not outbox[r]:
                            outbox[r] += beat
                        if not _send_beat(self.socks[r], outbox[r]):
                            gone.append(r)
                    last_sent = now
                for key, _ in sel.select(timeout=min(self.interval_s / 2, 0.5)):
                    r = key.data
                    state = _drain(self.socks[r], inbox[r]) if r in live else _OK
                    if isinstance(state, ssl.SSLError):
                        return self._found_tampered(r, state)
                    if state is _ENDED:
                        gone.append(r)  # ended: the data links report it
                    seen[r] = time.monotonic()
                    self._take_frames(r, inbox[r], seen[r])
                for r in set(gone) & live:  # never watched again (an ended socket stays readable)
                    live.discard(r)
                    sel.unregister(self.socks[r])
                now = time.monotonic()
                for r in sorted(live):
                    last = self._last(r)
                    if now - last > self.limit_s and not self._halt.is_set():
                        self.stopped, self.silent_s = r, now - last
                        self._found.set()
                        if self.on_stop is not None:
                            self.on_stop(r)
                        return
        finally:
            self._live = set()
            self._found.set()
            sel.close()

    def _found_tampered(self, r: int, exc: ssl.SSLError) -> None:
        text = str(exc).strip().splitlines()
        self.tampered, self.tamper_reason = r, text[0][:160] if text else type(exc).__name__
        self._found.set()
        if self.on_stop is not None:
            self.on_stop(r)


def open_heartbeats(
    mesh, trust, host: str, timeout_s: float, purpose: str = "heartbeat"
) -> dict[int, socket.socket]:
    """The heartbeat connections of this process (``{peer rank: socket}``), made after the data
    mesh (a complete :class:`protocols.network.channels.Mesh`) with the same ``trust`` (see the
    module docstring); ``host`` is the address this process listens on.  ``purpose``: another
    set of connections made the same way (``"he offline"``: the HE provider's own links, so its
    work for the next step runs beside this step's online protocol), named in errors.

    Raises:
        PartyError: not complete within ``timeout_s`` (naming whom it waited for, and every
            refused attempt).
    """
    from protocols.errors import PartyError
    from protocols.network import channels as C
    from protocols.network.handshake import Late, brief, close, connect_peer

    rank, names, total = mesh.rank, mesh.names, len(mesh.names)
    # the data mesh's refusal log: refusals at heartbeat listeners reach the report too
    beats = C.Mesh(rank, names, {}, mesh.versions, mesh.refused, mesh.secure)
    deadline = time.monotonic() + timeout_s
    listener = C._listen(host, 0) if rank < total - 1 else None
    try:
        if listener is not None:
            at, port = listener.getsockname()[:2]
            for k in range(rank + 1, total):  # over the authenticated data link
                C._send_json(mesh.socks[k], {purpose: f"{at}:{port}"})
        for j in range(rank):
            told = C._recv_json(mesh.socks[j], deadline)
            if not isinstance(told, dict) or not isinstance(told.get(purpose), str):
                raise ValueError(f"{names[j]} sent no {purpose} address")
            addr = C._parse_addr(told[purpose])
            source = f"{names[j]}'s {purpose} address"
            beats.socks[j] = connect_peer(
                j, addr, rank, names, trust, deadline, beats.refused, source
            )
        C._accept_peers(beats, listener, range(rank + 1, total), trust, deadline)
        return beats.socks
    except (OSError, ValueError, KeyError, TypeError, Late) as exc:
        for s in beats.socks.values():
            close(s)
        raise PartyError(
            f"{names[rank]}: could not open the {purpose} connections within {timeout_s:g} s "
            f"({brief(exc)})" + C._refusals(beats.refused)
        ) from None
    finally:
        if listener is not None:
            listener.close()


_OK, _ENDED = "ok", "ended"


def _send_beat(s: socket.socket, pending: bytearray) -> bool:
    """Send what ``pending`` holds, keeping any unsent rest there (a TLS write is retried with
    the same bytes); False when the connection is gone (a full buffer is not an error)."""
    try:
        sent = s.send(pending)
        del pending[:sent]
    except _AGAIN:
        pass
    except OSError:
        return False
    return True


def _drain(s: socket.socket, into: bytearray):
    """Read what is there into ``into``: ``_OK``, ``_ENDED`` (end of stream or a connection
    error), or the :class:`ssl.SSLError` of a record that failed TLS authentication."""
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return _ENDED
            into += data
            if len(into) >= _READ_MAX:
                return _OK
            if not (isinstance(s, ssl.SSLSocket) and s.pending()):
                return _OK
    except _AGAIN:
        return _OK
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return _ENDED
    except ssl.SSLError as exc:
        return exc
    except OSError:
        return _ENDED


def shut_down(socks: dict[int, socket.socket]) -> None:
    """Wake every wait on these sockets at once (from another thread): a raw shutdown that does
    not touch a TLS socket's state, so the waiting thread sees an ordinary connection error."""
    for s in socks.values():
        try:
            socket.socket.shutdown(s, socket.SHUT_RDWR)
        except OSError:
            pass
