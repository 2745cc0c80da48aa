"""The direct links between data parties (protocols.network.links): results, large transfers, and
the
typed errors a silent, dead or out-of-step peer produces (never a hang)."""

from __future__ import annotations

import time

import pytest
import torch


def exchange_party(session, n: int):
    rank = session.rank
    from protocols.arithmetic.reveal import gather_masked, open_masked

    s = session
    assert s.links is not None  # multi-party runs open masked values over the links
    base = torch.arange(n, dtype=torch.int64)
    x = base * (rank + 1) + rank
    (total,) = open_masked(s, [x], "test")
    gathered = gather_masked(s, x + 7, "test")
    # checked here (8 MB tensors do not travel back through the test's queue reliably)
    total_ok = torch.equal(total, sum(base * (r + 1) + r for r in range(s.world_size)))
    if rank == 0:
        return total_ok, [torch.equal(g, base * (r + 1) + r + 7) for r, g in enumerate(gathered)]
    return total_ok, gathered


@pytest.mark.parametrize(
    "world_size,n", [(3, 5), (2, 1), (4, 1 << 20)]
)  # 1 << 20: 8 MB each way at once
def test_exchange_and_gather(world_size, n, parties):
    outs = parties(exchange_party, world_size=world_size, provider="TTP", args=(n,), timeout_s=240)
    for rank, (total_ok, gathered) in enumerate(outs):
        assert total_ok
        assert gathered == ([True] * world_size if rank == 0 else None)


def silent_party(session):
    rank = session.rank
    from protocols.arithmetic.reveal import open_masked
    from protocols.errors import PartyError

    s = session
    if rank == 1:
        time.sleep(s.links.timeout_s + 4)  # alive, but never answers
        return None
    t0 = time.monotonic()
    try:
        open_masked(s, [torch.zeros(3, dtype=torch.int64)], "test")
    except PartyError as exc:
        return str(exc), time.monotonic() - t0, s.links.timeout_s
    return None


def test_silent_peer_times_out_naming_it(parties):
    out = parties(silent_party, world_size=2, provider="TFP", timeout_s=24)[
        0
    ]  # slack for start-up on a busy machine
    msg, waited, limit = out
    assert "party 0: lost contact with party 1" in msg and f"no data for {limit:g} s" in msg
    assert limit <= waited < limit + 3


def dead_party(session):
    rank = session.rank
    import os

    from protocols.arithmetic.reveal import open_masked
    from protocols.errors import PartyError

    s = session
    if rank == 2:
        os._exit(3)  # dies without a word
    t0 = time.monotonic()
    try:
        open_masked(s, [torch.zeros(3, dtype=torch.int64)], "test")
    except PartyError as exc:
        return str(exc), time.monotonic() - t0
    return None


def test_dead_peer_is_named_at_once(parties):
    for rank, out in enumerate(
        parties(dead_party, world_size=3, provider="TFP", timeout_s=60, may_die=(2,))[:2]
    ):
        msg, waited = out
        assert f"party {rank}: lost contact with party 2" in msg
        assert waited < 5  # the closed connection, not the 30 s timeout


def desync_party(session):
    rank = session.rank
    from protocols.arithmetic.reveal import open_masked
    from protocols.errors import PartyError, ProtocolError

    s = session
    try:
        open_masked(s, [torch.zeros(4 if rank == 1 else 3, dtype=torch.int64)], "test")
    except (ProtocolError, PartyError) as exc:  # the out-of-step message; the closed link
        return str(exc)
    return None


def test_out_of_step_peer_raises_instead_of_garbage(parties):
    outs = parties(desync_party, world_size=2, provider="TFP", timeout_s=30)
    assert "party 0: party 1 sent 32 bytes where 24 were expected" in outs[0]
    assert outs[1] and outs[1].startswith(
        "party 1: "
    )  # waits for 8 more bytes: party 0's close ends it


def test_posted_receives_complete_in_order_and_a_large_send_cannot_deadlock_on_them():
    """Party 0's dealer link without threads in the library: answers are posted receives that
    complete in posting order (any later read from that peer first fills them), and a large
    message to a peer whose large answers are still unread reads those first instead of both
    sides waiting on full socket buffers.  Two Links over a socket pair; the dealer in a thread."""
    import socket
    import threading

    from protocols.network.links import Links

    a_sock, b_sock = socket.socketpair()
    a = Links(0, 1, {1: a_sock}, 20.0, ["party 0", "dealer"])
    b = Links(1, 1, {0: b_sock}, 20.0, ["party 0", "dealer"])
    big = 8 << 20  # far more than the socket buffers hold
    answers = [bytes([k]) * big for k in (1, 2, 3)]
    request = b"\x07" * big
    got = {}

    def dealer():  # answers the two requests party 0 already sent, then reads the next one
        b.send_bytes(0, answers[0])  # blocks until party 0 reads it
        b.send_bytes(0, answers[1])
        got["request"] = b.recv_bytes(0, len(request))
        b.send_bytes(0, answers[2])

    t = threading.Thread(target=dealer)
    t.start()
    first, second = a.post_recv(1, big), a.post_recv(1, big)
    a.send_bytes(1, request)  # large: reads both posted answers before sending
    assert first.data == answers[0] and second.data == answers[1]
    third = a.post_recv(1, big)
    assert a.wait(third) == answers[2]
    t.join(timeout=30)
    assert got["request"] == request
    fourth, fifth = a.post_recv(1, 8), a.post_recv(1, 8)  # small ones, waited for out of order
    b.send_bytes(0, b"4" * 8)
    b.send_bytes(0, b"5" * 8)
    assert a.wait(fifth) == b"5" * 8 and fourth.data == b"4" * 8
    a.close()
    b.close()
