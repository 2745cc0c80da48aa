"""Party 0's address book cannot make another process hammer a host of party 0's choosing.

Every process but party 0 learns where the other ranks listen from party 0's address book
(the run file pins identities, not addresses).  A hostile party 0 can write any host:port
there.  The connection to it is pin-checked before anything beyond the hello is sent, and the
number of attempts at such an address is bounded (``BOOK_ATTEMPTS``): the attack below (a
"victim" service that answers nothing useful) first made the dealer connect until the run's
timeout (50 times in the attack run of issue 26); now it stops after the bound with one line
naming the address and where it came from.

Threads and loopback sockets only (no processes): party 0 is played by a thread speaking the
plaintext bootstrap (``--insecure-plaintext-transport``'s framing, the same code path).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from protocols.errors import PartyError
from protocols.network.channels import HELLO, MAGIC, open_mesh
from protocols.network.handshake import BOOK_ATTEMPTS, Trust

NAMES = ["party 0", "party 1", "dealer"]


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def _victim(listener: socket.socket, count: list[int], stop: threading.Event) -> None:
    """A service of party 0's choosing: counts connections, answers junk, closes."""
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        count[0] += 1
        try:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(64))
        except OSError:
            pass
        conn.close()


def _hostile_party0(listener: socket.socket, victim_addr: str) -> None:
    """Accept the dealer as rank 2, then send a book whose party 1 is the victim."""
    conn, _ = listener.accept()
    conn.settimeout(30)
    got = b""
    while len(got) < HELLO.size:
        got += conn.recv(HELLO.size - len(got))
    conn.sendall(HELLO.pack(MAGIC, 0, len(NAMES), 0, 0))
    n = int.from_bytes(conn.recv(4), "little")
    conn.recv(n)  # the dealer's inner hello
    body = json.dumps({"versions": [5, 5, 5], "addrs": {"1": victim_addr}}).encode()
    conn.sendall(len(body).to_bytes(4, "little") + body)
    time.sleep(30)  # keep the link open: the dealer must stop on its own
    conn.close()


def test_an_address_from_party_0s_book_is_tried_a_bounded_number_of_times(tmp_path):
    rendezvous, victim = _listener(), _listener()
    host, port = rendezvous.getsockname()
    victim_addr = f"127.0.0.1:{victim.getsockname()[1]}"
    count, stop = [0], threading.Event()
    threading.Thread(target=_victim, args=(victim, count, stop), daemon=True).start()
    threading.Thread(target=_hostile_party0, args=(rendezvous, victim_addr), daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(PartyError) as err:
            open_mesh(2, NAMES, f"tcp://{host}:{port}", 40.0, Trust(insecure=True), 5, "127.0.0.1")
    finally:
        stop.set()
    line = str(err.value)
    assert count[0] <= BOOK_ATTEMPTS, f"{count[0]} connections to the victim"
    assert time.monotonic() - started < 35, "the dealer kept trying until the run's timeout"
    assert f"gave up on party 1 at {victim_addr} after {BOOK_ATTEMPTS} attempts" in line
    assert "party 0's address book" in line
    assert "\n" not in line
